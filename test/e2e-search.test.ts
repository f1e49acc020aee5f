import { type SearchEvent, segmentJobId } from '@gantry/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ashaDecide, bestSoFar } from '../packages/coordinator/src/search/asha.ts';
import { replaySchedule, scheduleAt } from '../packages/coordinator/src/search/replay.ts';
import { FaultStack } from './faults/harness.ts';
import { runGantry } from './support/cli.ts';

/**
 * Adaptive search end to end: a `gantry coordinator` process, two worker processes, real Redis and S3, a
 * small DCGAN on MNIST scored by FLD (README, "Adaptive search").
 * - ASHA (stop mode) on six random configurations; the coordinator is SIGKILLed right after its third
 *   decision and restarted: every recorded decision must be the rule applied to what was recorded at its
 *   rung before it (so the restart changed none), stopped trials must have stopped, the rest completed.
 * - PBT on four configurations with quantile 0.5 (the bottom half of the population exploits): exploits
 *   copy the source's exact checkpoint object and the resumed trial starts at the source's step with the
 *   explored parameters; then pbt-replay trains the recorded schedule. Training and evaluation are seeded
 *   (trial seeds from the sweep's), so a trial's FLD at a step does not depend on timing; in the runs seen
 *   t002 was the worst at step 50 (2313 against 2240-2287), and it pauses after t000 or t001 has (it starts
 *   in the place one of them frees), so that exploit happens whatever the order of the pauses.
 */
const net = {
  batch_size: { value: 16 },
  base_filters: { value: 8 },
  latent_dim: { value: 16 },
};
const common = {
  model: 'dcgan',
  dataset: 'mnist',
  metric: { name: 'fld', goal: 'minimize' },
  checkpoint: { every_steps: 50 },
  health: {
    eval_every_steps: 50,
    eval_samples: 64,
    mode_collapse: { policy: 'off' },
    non_convergence: { policy: 'off' },
    d_dominance: { policy: 'off' },
  },
};

type Rung = Extract<SearchEvent, { kind: 'rung' }>;
type Exploit = Extract<SearchEvent, { kind: 'exploit' }>;

describe('adaptive search on real workers', () => {
  let stack: FaultStack;
  // biome-ignore lint/suspicious/noExplicitAny: the API's JSON, read field by field
  const api = async (path: string): Promise<any> => (await fetch(`${stack.coordinator!.url}${path}`)).json();
  beforeAll(async () => {
    stack = await FaultStack.start({
      workers: 2,
      env: { GANTRY_PROGRESS_EVERY: '10' },
      coordinatorEnv: { GANTRY_FAULT_KILL_AT: 'search:3' },
    });
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('ASHA stops trials at rungs and completes the rest; a coordinator SIGKILL changes no decision', async () => {
    const { id, trialIds } = await stack.submit({
      name: 'e2e-asha',
      ...common,
      method: 'random',
      seed: 21,
      budget: { trials: 6, parallel: 2, steps: 200 },
      parameters: {
        ...net,
        lr_g: { distribution: 'log_uniform', min: 1e-6, max: 2e-3 },
        lr_d: { distribution: 'log_uniform', min: 1e-6, max: 2e-3 },
      },
      scheduler: { type: 'asha', min_steps: 50, eta: 2 },
    });
    // The third decision killed the coordinator before it did anything else.
    const code = await stack.coordinator!.exited;
    expect(stack.coordinator!.child.signalCode ?? code).toBe('SIGKILL');
    expect((await stack.store.searchEvents(id)).length).toBe(3);
    await stack.startCoordinator();
    expect((await stack.waitForSweepEnd(id)).state).toBe('completed');

    const trials = await stack.trials(trialIds);
    const rungs = (await stack.store.searchEvents(id)).filter((e): e is Rung => e.kind === 'rung');
    // Rungs at 50 and 100 (200 is the budget): each trial is recorded once per rung it reached.
    const lateStops = new Set<string>();
    for (const t of trials) {
      const mine = rungs.filter((r) => r.trial === t.id);
      expect(mine.map((r) => r.rung)).toEqual(mine.map((_, i) => i));
      const stop = mine.find((r) => r.action === 'stop');
      if (stop) expect(mine.at(-1)).toBe(stop);
      if (stop && t.state === 'completed') {
        // Decided after the trial had ended: it trained on to its end while the coordinator was down, and
        // its evaluation at the rung was read after the restart. The decision is recorded (it counts at its
        // rung) and changed nothing: the trial ran all its steps and kept its own end.
        expect(t.step, t.id).toBe(200);
        expect(t.reason ?? '').not.toMatch(/^asha/);
        lateStops.add(t.id);
      } else if (stop) {
        expect(t.state, t.id).toBe('stopped');
        expect(t.reason).toMatch(new RegExp(`^asha: rung ${stop.rung} \\(step ${stop.step}\\)`));
        expect(t.step).toBeLessThan(200);
      } else expect(t.state, `${t.id}: ${t.reason}`).toBe('completed');
      // The value recorded is the best FLD of the trial's own evaluations up to the rung's step.
      const history = await stack.store.qualityHistory(t.id);
      for (const r of mine)
        expect(r.value).toBe(
          bestSoFar(
            history.map((q) => ({ step: q.step, value: q.fld })),
            r.step,
          ),
        );
    }
    // Replaying the rule over the recorded order gives every recorded decision and cut-off.
    for (const rung of [0, 1]) {
      const at = rungs.filter((r) => r.rung === rung);
      at.forEach((r, i) => {
        const d = ashaDecide(
          at.slice(0, i).map((x) => x.value),
          r.value,
          2,
        );
        expect([r.trial, r.recorded, r.action, r.cutoff]).toEqual([r.trial, i, d.action, d.cutoff]);
      });
    }
    expect(trials.filter((t) => t.state === 'stopped').length).toBeGreaterThan(0);
    expect(trials.filter((t) => t.state === 'completed').length).toBeGreaterThan(0);
    // Stopped trials trained less: the sweep used fewer steps than six full trials.
    expect(trials.reduce((n, t) => n + t.step, 0)).toBeLessThan(6 * 200);
    // The API's search block and gantry status show the rungs and the stops.
    const view = await api(`/v1/sweeps/${id}`);
    const stopped = trials.filter((t) => t.state === 'stopped').length;
    expect(view.search.stops.length).toBe(stopped);
    // A stop decided after its trial had completed is not listed as one.
    for (const late of lateStops)
      expect(view.search.stops.map((x: { trial: string }) => x.trial)).not.toContain(late);
    expect(view.search.rungs.map((r: { step: number; recorded: number }) => [r.step, r.recorded])).toEqual([
      [50, rungs.filter((r) => r.rung === 0).length],
      [100, rungs.filter((r) => r.rung === 1).length],
    ]);
    const status = await runGantry({ ...process.env, GANTRY_API_URL: stack.coordinator!.url }, [
      'status',
      id,
    ]);
    expect(status.code, status.err).toBe(0);
    expect(status.out).toMatch(/rung/);
  }, 180_000);

  it('PBT exploits from the source checkpoint object with explored parameters, and pbt-replay trains the schedule', async () => {
    const { id, trialIds } = await stack.submit({
      name: 'e2e-pbt',
      ...common,
      method: 'grid',
      seed: 4,
      budget: { trials: 4, parallel: 2, steps: 150 },
      parameters: { ...net, lr_d: { value: 2e-4 }, lr_g: { values: [1e-6, 2e-4, 4e-4, 8e-4] } },
      scheduler: { type: 'pbt', interval: 50, quantile: 0.5 },
    });
    const ended = await stack.waitForSweepEnd(id).catch(async (err) => {
      console.log(
        JSON.stringify(await stack.trials(trialIds)),
        JSON.stringify(await stack.store.searchEvents(id)),
      );
      throw err;
    });
    expect(ended.state).toBe('completed');
    const trials = await stack.trials(trialIds);
    expect(trials.map((t) => t.state)).toEqual(['completed', 'completed', 'completed', 'completed']);
    const events = await stack.store.searchEvents(id);
    // One decision per ready point: each trial's segments are decided once, in order.
    const ready = events.filter((e) => e.kind === 'exploit' || e.kind === 'continue');
    for (const t of trials) {
      const mine = ready.filter((e) => e.trial === t.id).map((e) => e.segment);
      expect(mine).toEqual(mine.map((_, i) => i + 1));
      expect(t.segment).toBe(mine.length);
    }
    const exploits = events.filter((e): e is Exploit => e.kind === 'exploit');
    expect(exploits.length).toBeGreaterThan(0);
    for (const e of exploits) {
      // The source's checkpoint at the step its value was measured on: an entry of its list, not its pointer.
      const sourceRefs = await stack.store.checkpoints(e.source);
      expect(sourceRefs.some((c) => c.manifestKey === e.sourceManifest && c.step === e.sourceStep)).toBe(
        true,
      );
      const src = await stack.objects.getJson<{ objects: { name: string; sha256: string }[] }>(
        e.sourceManifest,
      );
      const copy = await stack.objects.getJson<{
        trialId: string;
        objects: { name: string; sha256: string }[];
      }>(e.copiedManifest);
      expect(copy.trialId).toBe(e.trial);
      expect(copy.objects.map((o) => [o.name, o.sha256])).toEqual(src.objects.map((o) => [o.name, o.sha256]));
      // The next segment's job trained with the explored parameters, from the source's step.
      const job = await stack.queue.getJob(segmentJobId(e.trial, e.segment));
      expect(job?.data.params).toEqual(e.to);
      const starts = (await stack.store.events(e.trial)).filter((x) => x.event === 'start' && x.t > e.t);
      expect(starts[0]?.step).toBe(e.sourceStep);
      const after = (await stack.store.history(e.trial)).filter((p) => p.t > e.t);
      expect(after[0]!.step).toBeGreaterThan(e.sourceStep);
      expect(after[0]!.step).toBeLessThanOrEqual(e.sourceStep + 10);
      expect(Object.keys(e.explored)).toEqual(['lr_g']);
    }

    const view = await api(`/v1/sweeps/${id}`);
    expect(view.search.lineage.map((l: Exploit) => l.copiedManifest)).toEqual(
      exploits.map((e) => e.copiedManifest),
    );
    const status = await runGantry({ ...process.env, GANTRY_API_URL: stack.coordinator!.url }, [
      'status',
      id,
    ]);
    expect(status.out).toContain(`pbt lineage: ${exploits.length} exploit`);

    // Replay the schedule of the trial with the most exploits in its lineage, from scratch.
    const target = exploits.at(-1)!.trial;
    const byId = new Map(trials.map((t) => [t.id, t]));
    const initial = (t: string) =>
      exploits.filter((e) => e.trial === t).sort((a, b) => a.segment - b.segment)[0]?.from ??
      byId.get(t)?.params;
    const schedule = replaySchedule(target, exploits, initial, 150);
    const replay = await stack.submit({
      name: 'e2e-pbt-replay',
      ...common,
      method: 'pbt-replay',
      replay: { sweep: id, trial: target },
      seed: 4,
      budget: { trials: 1, parallel: 1, steps: 150 },
      parameters: net,
    });
    expect((await stack.waitForSweepEnd(replay.id)).state).toBe('completed');
    const sweep = await stack.store.get(replay.id);
    expect(sweep!.spec.replay?.schedule).toEqual(schedule);
    // Each segment's job trained with the schedule's parameters at the step it started from.
    const [rt] = await stack.trials(replay.trialIds);
    expect(rt!.state).toBe('completed');
    const starts = (await stack.store.events(rt!.id)).filter((x) => x.event === 'start');
    for (let k = 0; k <= (rt!.segment ?? 0); k++) {
      const job = await stack.queue.getJob(segmentJobId(rt!.id, k));
      const from = starts[k]!.step;
      expect(job?.data.params.lr_g, `segment ${k} from step ${from}`).toBe(
        scheduleAt(schedule, from).params.lr_g,
      );
    }
  }, 300_000);
});
