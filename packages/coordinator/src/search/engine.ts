import {
  ashaRungs,
  type CheckpointRef,
  CorruptCheckpointError,
  checkpointOrder,
  copyCheckpoint,
  deriveSeed,
  encodeTrial,
  type FaultInjector,
  type Logger,
  type ObjectStore,
  type ParameterSpec,
  pbtParams,
  type QualityPoint,
  Rng,
  type SearchEvent,
  type SweepSpec,
  segmentJobId,
  TERMINAL_TRIAL_STATES,
  type TrialRecord,
} from '@gantry/shared';
import type { Queue } from 'bullmq';
import { constantsOf, planSweep, withDefaults } from '../planner/plan-sweep.ts';
import type { StoredSweep, SweepStore } from '../sweep-store.ts';
import { ashaBracket, ashaDecide, ashaPromotable, bestSoFar } from './asha.ts';
import { medianDecide } from './median.ts';
import { inDomain, type SearchedParameter } from './parzen.ts';
import { pbtDonor, pbtExplore, pbtQuantiles } from './pbt.ts';
import { scheduleAt } from './replay.ts';
import { suggestTpe, type TpeObservation, type TpePruned } from './tpe.ts';

export type Trial = TrialRecord & { dispatched: boolean };

type Exploit = Extract<SearchEvent, { kind: 'exploit' }>;
type Continue = Extract<SearchEvent, { kind: 'continue' }>;
type Rung = Extract<SearchEvent, { kind: 'rung' }>;

/** A metric point as the rules see it: a loss (lower is better), whatever the spec's goal. */
interface Point {
  step: number;
  value: number;
}

/**
 * Ends a trial for a scheduler and records why, unless it has already ended: the event is appended either
 * way (it is the decision), the trial's state changes only from a live one. Returns 1 when it stopped it.
 */
const STOP_TRIAL = `
redis.call('RPUSH', KEYS[2], ARGV[1])
local s = redis.call('HGET', KEYS[1], 'state')
if s == 'completed' or s == 'failed' or s == 'diverged' or s == 'stopped' or s == 'cancelled' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'stopped', 'reason', ARGV[2], 'endedAt', ARGV[3])
return 1
`;

const fmt = (v: number) =>
  Math.abs(v) >= 1000 || Math.abs(v) < 0.01 ? v.toExponential(2) : v.toPrecision(4);

/** Whether trial `t` is trained in segments: the schedulers that pause trials, and pbt-replay. */
export function segmented(spec: SweepSpec): boolean {
  const s = spec.scheduler;
  return spec.method === 'pbt-replay' || s?.type === 'pbt' || (s?.type === 'asha' && s.mode === 'promote');
}

/** Whether a trial trained in segments is paused at its segment's end, waiting for a decision or a slot. */
export function isPaused(t: Trial): boolean {
  return t.dispatched && t.state === 'queued' && t.pausedAt !== undefined && t.pausedAt === t.until;
}

export interface SearchEngineDeps {
  store: SweepStore;
  queue: Queue;
  objects: ObjectStore;
  log: Logger;
  faults: FaultInjector;
  /** Ids of the workers with a live heartbeat (a trial of a vanished worker is not running any more). */
  liveWorkers: () => Promise<ReadonlySet<string>>;
}

/**
 * The coordinator's half of adaptive search (README, "Adaptive search"): each scheduler pass it reads what
 * the sweep's trials reported (their quality histories) and the decisions made so far (the sweep's search
 * events in Redis), makes the decisions that are due, records each before acting on it, and acts. A
 * decision is never made twice: after a restart the recorded ones are read back and any not yet applied
 * (a PBT exploit whose copy was cut short) is applied again.
 */
export class SearchEngine {
  constructor(private readonly deps: SearchEngineDeps) {}

  /** The first segment of a new trial of `spec` (step 0), or undefined when it trains in one job. */
  firstSegment(spec: SweepSpec, index: number): { segment: number; until?: number } | undefined {
    if (!segmented(spec)) return undefined;
    const until = nextPause(spec, index, 0);
    return { segment: 0, ...(until !== undefined ? { until } : {}) };
  }

  /** Makes the decisions due in `sweep` and applies them; updates `trials` in place. */
  async decide(sweep: StoredSweep, trials: Trial[]): Promise<void> {
    const { spec } = sweep;
    const sch = spec.scheduler;
    if (!sch && spec.method !== 'pbt-replay') return;
    const events = await this.deps.store.searchEvents(sweep.id);
    const series = await this.deps.store.qualityHistories(trials.map((t) => t.id));
    const pts = (t: Trial) => metricPoints(spec, series.get(t.id) ?? []);
    if (sch?.type === 'asha' && sch.mode === 'stop') await this.ashaStop(sweep, trials, events, pts);
    if (sch?.type === 'asha' && sch.mode === 'promote') await this.ashaPause(sweep, trials, events, pts);
    if (sch?.type === 'median') await this.median(sweep, trials, events, pts);
    if (sch?.type === 'pbt') await this.pbt(sweep, trials, events, pts);
    if (spec.method === 'pbt-replay') await this.replay(sweep, trials, events);
  }

  private sign(spec: SweepSpec): number {
    return spec.metric.goal === 'minimize' ? 1 : -1;
  }

  /** Appends a decision; with `stop`, ends the trial in the same script unless it ended already. */
  private async record(sweep: StoredSweep, ev: SearchEvent, stop?: { trial: Trial; reason: string }) {
    const { store } = this.deps;
    if (!stop) await store.redis.rpush(store.keys.sweepSearch(sweep.id), JSON.stringify(ev));
    else {
      const now = Date.now();
      const stopped = (await store.redis.eval(
        STOP_TRIAL,
        2,
        store.keys.trial(stop.trial.id),
        store.keys.sweepSearch(sweep.id),
        JSON.stringify(ev),
        stop.reason,
        String(now),
      )) as number;
      if (stopped === 1) {
        Object.assign(stop.trial, { state: 'stopped', reason: stop.reason, endedAt: now });
        this.deps.log.info(
          { sweepId: sweep.id, trialId: stop.trial.id, reason: stop.reason },
          'trial stopped',
        );
      }
      this.deps.faults.point('search');
      if (stopped === 1) await this.haltJob(stop.trial);
      return;
    }
    this.deps.faults.point('search');
  }

  /** Tells the worker that trains a stopped trial to stop, and takes a job nobody has started off the queue. */
  private async haltJob(t: Trial): Promise<void> {
    const { store, queue } = this.deps;
    if (!t.dispatched) return;
    const jobId = t.segment !== undefined ? segmentJobId(t.id, t.segment) : t.id;
    const job = await queue.getJob(jobId);
    const state = job ? await job.getState() : 'unknown';
    if (job && (state === 'waiting' || state === 'delayed' || state === 'prioritized'))
      await job.remove().catch(() => {});
    await store.redis.publish(store.keys.control, JSON.stringify({ type: 'cancel', trialIds: [t.id] }));
  }

  // ---- ASHA, stopping variant --------------------------------------------------------------------------

  private async ashaStop(
    sweep: StoredSweep,
    trials: Trial[],
    events: SearchEvent[],
    pts: (t: Trial) => Point[],
  ) {
    const sch = sweep.spec.scheduler;
    if (sch?.type !== 'asha') return;
    const sign = this.sign(sweep.spec);
    for (const t of [...trials].sort((a, b) => a.index - b.index)) {
      const bracket = ashaBracket(t.index, sch.brackets);
      const rungs = ashaRungs(sch, bracket, sweep.spec.budget.steps);
      const points = pts(t);
      for (let k = 0; k < rungs.length; k++) {
        const step = rungs[k]!;
        const mine = events.find((e): e is Rung => e.kind === 'rung' && e.trial === t.id && e.rung === k);
        if (mine) {
          if (mine.action === 'stop') break;
          continue;
        }
        // A trial is recorded at a rung once an evaluation at or past the rung's step came in.
        if (!points.some((p) => p.step >= step)) break;
        const value = bestSoFar(points, step);
        if (value === undefined) break;
        const recorded = rungValues(events, bracket, k).map((v) => sign * v);
        const d = ashaDecide(recorded, value, sch.eta);
        const ev: Rung = {
          kind: 'rung',
          trial: t.id,
          bracket,
          rung: k,
          step,
          value: sign * value,
          recorded: recorded.length,
          cutoff: sign * d.cutoff,
          action: d.action,
          t: Date.now(),
        };
        events.push(ev);
        const metric = sweep.spec.metric.name;
        await this.record(
          sweep,
          ev,
          d.action === 'stop'
            ? {
                trial: t,
                reason: `asha: rung ${k} (step ${step}): best ${metric} ${fmt(ev.value)} is outside the top 1/${sch.eta} of the ${recorded.length + 1} trials recorded there (cut-off ${fmt(ev.cutoff!)})`,
              }
            : undefined,
        );
        if (d.action === 'stop') break;
      }
    }
  }

  // ---- ASHA, promotion variant -------------------------------------------------------------------------

  /** Records each trial that paused at a rung (its value there); promotions happen when a slot is free. */
  private async ashaPause(
    sweep: StoredSweep,
    trials: Trial[],
    events: SearchEvent[],
    pts: (t: Trial) => Point[],
  ) {
    const sch = sweep.spec.scheduler;
    if (sch?.type !== 'asha') return;
    const sign = this.sign(sweep.spec);
    for (const t of trials) {
      if (!isPaused(t)) continue;
      const bracket = ashaBracket(t.index, sch.brackets);
      const k = ashaRungs(sch, bracket, sweep.spec.budget.steps).indexOf(t.pausedAt!);
      if (k < 0 || events.some((e) => e.kind === 'rung' && e.trial === t.id && e.rung === k)) continue;
      const value = bestSoFar(pts(t), t.pausedAt!);
      if (value === undefined) continue;
      const ev: Rung = {
        kind: 'rung',
        trial: t.id,
        bracket,
        rung: k,
        step: t.pausedAt!,
        value: sign * value,
        recorded: rungValues(events, bracket, k).length,
        cutoff: null,
        action: 'pause',
        t: Date.now(),
      };
      events.push(ev);
      await this.record(sweep, ev);
    }
  }

  /**
   * ASHA promote: up to `room` paused trials that are in the top floor(n/eta) of their rung, highest rung
   * first, move on to their next rung (they become waiting trials for the scheduler to dispatch).
   * Returns the promoted trials' ids.
   */
  async promote(sweep: StoredSweep, trials: Trial[], room: number): Promise<string[]> {
    const sch = sweep.spec.scheduler;
    if (sch?.type !== 'asha' || sch.mode !== 'promote' || room <= 0) return [];
    const events = await this.deps.store.searchEvents(sweep.id);
    const sign = this.sign(sweep.spec);
    const rungsOf = (b: number) => ashaRungs(sch, b, sweep.spec.budget.steps);
    const cells: { bracket: number; rung: number }[] = [];
    for (let b = 0; b < sch.brackets; b++)
      for (let k = 0; k < rungsOf(b).length; k++) cells.push({ bracket: b, rung: k });
    cells.sort((a, b) => rungsOf(b.bracket)[b.rung]! - rungsOf(a.bracket)[a.rung]! || a.bracket - b.bracket);
    const promoted: string[] = [];
    // A promotion recorded by a coordinator that died before acting on it is carried out first.
    for (const e of events) {
      if (e.kind !== 'promote') continue;
      const t = trials.find((x) => x.id === e.trial);
      if (t && isPaused(t) && t.pausedAt === e.step) {
        await this.nextSegment(sweep, t, t.params, e.step, '');
        promoted.push(t.id);
      }
    }
    for (const { bracket, rung } of cells) {
      if (promoted.length >= room) break;
      const recs = events.filter(
        (e): e is Rung => e.kind === 'rung' && e.bracket === bracket && e.rung === rung,
      );
      const done = new Set(
        events
          .filter((e) => e.kind === 'promote' && e.bracket === bracket && e.rung === rung)
          .map((e) => (e as { trial: string }).trial),
      );
      const ready = ashaPromotable(
        recs.map((r) => ({ trial: r.trial, value: sign * r.value })),
        done,
        sch.eta,
      );
      for (const id of ready) {
        if (promoted.length >= room) break;
        const t = trials.find((x) => x.id === id);
        if (!t || !isPaused(t) || t.pausedAt !== rungsOf(bracket)[rung]) continue;
        const rec = recs.find((r) => r.trial === id)!;
        const ev: SearchEvent = {
          kind: 'promote',
          trial: id,
          bracket,
          rung,
          step: rec.step,
          value: rec.value,
          t: Date.now(),
        };
        events.push(ev);
        await this.record(sweep, ev);
        await this.nextSegment(sweep, t, t.params, t.pausedAt!, '');
        promoted.push(id);
      }
    }
    return promoted;
  }

  /**
   * ASHA promote at the sweep's end (no trial running, none left to start): a paused trial that was never
   * promoted ends as stopped, with the rung it waited at.
   */
  async finish(sweep: StoredSweep, trials: Trial[]): Promise<void> {
    const sch = sweep.spec.scheduler;
    if (sch?.type !== 'asha' || sch.mode !== 'promote') return;
    for (const t of trials) {
      if (!isPaused(t)) continue;
      const reason = `asha: not promoted from the rung at step ${t.pausedAt}: outside the top 1/${sch.eta} of its rung when the sweep ran out of trials`;
      await this.record(
        sweep,
        { kind: 'end', trial: t.id, step: t.pausedAt!, reason, t: Date.now() },
        { trial: t, reason },
      );
    }
  }

  // ---- median stopping --------------------------------------------------------------------------------

  private async median(
    sweep: StoredSweep,
    trials: Trial[],
    events: SearchEvent[],
    pts: (t: Trial) => Point[],
  ) {
    const sch = sweep.spec.scheduler;
    if (sch?.type !== 'median') return;
    const { store } = this.deps;
    const checkedKey = `${store.keys.sweepSearch(sweep.id)}:median`;
    const checked = await store.redis.hgetall(checkedKey);
    const sign = this.sign(sweep.spec);
    const all = new Map(trials.map((t) => [t.id, pts(t)]));
    for (const t of trials) {
      if (TERMINAL_TRIAL_STATES.has(t.state)) continue;
      const own = all.get(t.id)!;
      const last = own.reduce((m, p) => Math.max(m, p.step), -1);
      if (last < 0 || last <= Number(checked[t.id] ?? -1)) continue;
      const others = trials.filter((o) => o.id !== t.id).map((o) => all.get(o.id)!);
      const d = medianDecide(own, others, last, sch);
      if (d?.stop) {
        const ev: SearchEvent = {
          kind: 'median',
          trial: t.id,
          step: last,
          value: sign * d.value,
          median: sign * d.median,
          others: d.others,
          action: 'stop',
          t: Date.now(),
        };
        events.push(ev);
        const metric = sweep.spec.metric.name;
        await this.record(sweep, ev, {
          trial: t,
          reason: `median stopping: best ${metric} ${fmt(ev.value)} up to step ${last} is worse than the median ${fmt(ev.median)} of ${d.others} other trials' running averages`,
        });
      }
      // Without enough others at this step there was no decision: it is made when they get there.
      if (d) await store.redis.hset(checkedKey, t.id, String(last));
    }
  }

  // ---- population-based training ----------------------------------------------------------------------

  private async pbt(sweep: StoredSweep, trials: Trial[], events: SearchEvent[], pts: (t: Trial) => Point[]) {
    const sch = sweep.spec.scheduler;
    if (sch?.type !== 'pbt') return;
    const sign = this.sign(sweep.spec);
    const names = pbtParams(sch, sweep.spec.parameters);
    for (const t of [...trials].sort((a, b) => a.step - b.step || a.index - b.index)) {
      if (!isPaused(t)) continue;
      const segment = (t.segment ?? 0) + 1;
      const made = readyEvent(events, t.id, segment);
      if (made) {
        await this.applyReady(sweep, t, events, made);
        continue;
      }
      const at = t.pausedAt!;
      const own = pts(t).filter((p) => p.step <= at);
      const value = own.findLast((p) => p.step === at)?.value ?? own.at(-1)?.value;
      if (value === undefined) {
        await this.recordAndApply(sweep, t, events, {
          kind: 'continue',
          trial: t.id,
          segment,
          step: at,
          params: t.params,
          t: Date.now(),
        });
        continue;
      }
      // The population: every other live trial's value at its latest ready point, and this one's now.
      const latest = new Map<string, Exploit | Continue>();
      for (const e of events)
        if ((e.kind === 'exploit' || e.kind === 'continue') && e.value !== undefined) latest.set(e.trial, e);
      const live = trials.filter(
        (o) => o.id !== t.id && !TERMINAL_TRIAL_STATES.has(o.state) && latest.has(o.id),
      );
      const pop = [
        ...live.map((o) => ({ trial: o.id, value: sign * latest.get(o.id)!.value! })),
        { trial: t.id, value },
      ];
      const { top, bottom } = pbtQuantiles(pop, sch.quantile);
      const rng = new Rng((deriveSeed(sweep.spec.seed, t.index) ^ Math.imul(segment, 0x9e3779b1)) >>> 0);
      let ev: SearchEvent = {
        kind: 'continue',
        trial: t.id,
        segment,
        step: at,
        value: sign * value,
        params: t.params,
        // The checkpoint its value was measured on: what a later exploit of this trial copies.
        ...(t.latestCheckpoint?.step === at ? { checkpoint: t.latestCheckpoint.manifestKey } : {}),
        t: Date.now(),
      };
      if (bottom.includes(t.id)) {
        // A donor's checkpoint is the one its value was measured on: never a trial that had itself just
        // copied another's weights at that point.
        const eligible = top.filter((id) => latest.get(id)?.kind === 'continue');
        const donorId = pbtDonor(eligible, t.id, rng);
        const donor = donorId ? trials.find((o) => o.id === donorId) : undefined;
        const rec = donorId ? latest.get(donorId) : undefined;
        // Its checkpoint at that ready point, by the manifest recorded with the decision (never a copy
        // another exploit wrote into its folder since).
        const ref =
          donor && rec?.kind === 'continue'
            ? (await this.deps.store.checkpoints(donor.id)).findLast((c) =>
                rec.checkpoint
                  ? c.manifestKey === rec.checkpoint
                  : c.step === rec.step && c.worker !== 'coordinator',
              )
            : undefined;
        if (donor && rec && ref) {
          const explored = pbtExplore(donor.params, names, sweep.spec.parameters, sch, rng, sweep.spec.model);
          ev = {
            kind: 'exploit',
            trial: t.id,
            segment,
            step: at,
            value: sign * value,
            source: donor.id,
            sourceStep: rec.step,
            sourceValue: rec.value!,
            sourceManifest: ref.manifestKey,
            copiedManifest: `sweeps/${sweep.id}/trials/${t.id}/checkpoints/${rec.step}/pbt-${segment}/manifest.json`,
            from: t.params,
            to: { ...donor.params, ...explored.params },
            explored: explored.explored,
            t: Date.now(),
          };
        }
      }
      await this.recordAndApply(sweep, t, events, ev);
    }
  }

  /** Records a ready-point decision (in Redis and in `events`, which later trials of the pass read), then applies it. */
  private async recordAndApply(
    sweep: StoredSweep,
    t: Trial,
    events: SearchEvent[],
    ev: Exploit | Continue,
  ): Promise<void> {
    await this.deps.store.redis.rpush(this.deps.store.keys.sweepSearch(sweep.id), JSON.stringify(ev));
    events.push(ev);
    this.deps.faults.point('search');
    await this.applyReady(sweep, t, events, ev);
  }

  /** Applies a recorded ready-point decision: an exploit copies the checkpoint and moves the pointer to it. */
  private async applyReady(
    sweep: StoredSweep,
    t: Trial,
    events: SearchEvent[],
    ev: Exploit | Continue,
  ): Promise<void> {
    if (ev.kind === 'continue') {
      await this.nextSegment(sweep, t, ev.params ?? t.params, ev.step, '');
      return;
    }
    const { store, objects, log } = this.deps;
    const source = (await store.checkpoints(ev.source)).find((c) => c.manifestKey === ev.sourceManifest);
    const writer = `pbt-${ev.segment}`;
    let copy: { manifestKey: string; step: number };
    try {
      copy = await copyCheckpoint(objects, {
        from: { sweepId: sweep.id, trialId: ev.source, manifestKey: ev.sourceManifest },
        to: { sweepId: sweep.id, trialId: t.id, writer },
      });
    } catch (err) {
      if (!(err instanceof CorruptCheckpointError)) throw err;
      // The source checkpoint no longer reads back whole: the decision is replaced by a recorded
      // continue (readyEvent takes the last one), so the trial goes on with its own weights.
      log.warn({ sweepId: sweep.id, trialId: t.id, err: err.message }, 'pbt: exploit source unusable');
      const instead: Continue = {
        kind: 'continue',
        trial: t.id,
        segment: ev.segment,
        step: ev.step,
        value: ev.value,
        params: t.params,
        reason: `exploit of ${ev.source} at step ${ev.sourceStep} dropped: ${err.message}`,
        t: Date.now(),
      };
      await this.recordAndApply(sweep, t, events, instead);
      return;
    }
    const ref: CheckpointRef = {
      step: copy.step,
      manifestKey: copy.manifestKey,
      worker: 'coordinator',
      t: Date.now(),
      ...(source?.restarts ? { restarts: source.restarts } : {}),
    };
    const tx = store.redis
      .multi()
      .hset(store.keys.trial(t.id), {
        latestCheckpoint: JSON.stringify(ref),
        checkpointOrder: String(checkpointOrder(ref)),
      })
      .rpush(store.keys.trialCheckpoints(t.id), JSON.stringify(ref));
    await tx.exec();
    t.latestCheckpoint = ref;
    log.info(
      { sweepId: sweep.id, trialId: t.id, source: ev.source, step: ev.sourceStep, params: ev.to },
      'pbt: exploit',
    );
    await this.nextSegment(
      sweep,
      t,
      ev.to,
      ev.sourceStep,
      `pbt: copied ${ev.source} at step ${ev.sourceStep}`,
    );
  }

  /**
   * Makes trial `t` a waiting trial again, for its next segment from `step` with `params` (its job is
   * queued by the scheduler's dispatch, in step order).
   */
  private async nextSegment(
    sweep: StoredSweep,
    t: Trial,
    params: Record<string, number>,
    step: number,
    reason: string,
  ): Promise<void> {
    const { store } = this.deps;
    const segment = (t.segment ?? 0) + 1;
    const until = nextPause(sweep.spec, t.index, step);
    const tx = store.redis.multi().hset(store.keys.trial(t.id), {
      ...encodeTrial({ params, segment, step }),
      pausedAt: '',
      dispatched: '0',
      reason,
    });
    if (until === undefined) tx.hdel(store.keys.trial(t.id), 'until');
    else tx.hset(store.keys.trial(t.id), 'until', String(until));
    await tx.exec();
    Object.assign(t, {
      params,
      segment,
      step,
      until,
      pausedAt: undefined,
      dispatched: false,
      reason: reason || undefined,
    });
  }

  // ---- pbt-replay --------------------------------------------------------------------------------------

  private async replay(sweep: StoredSweep, trials: Trial[], events: SearchEvent[]) {
    const schedule = sweep.spec.replay?.schedule;
    if (!schedule) return;
    for (const t of trials) {
      if (!isPaused(t)) continue;
      const segment = (t.segment ?? 0) + 1;
      const made = readyEvent(events, t.id, segment);
      if (made) {
        await this.applyReady(sweep, t, events, made);
        continue;
      }
      const params = withDefaults(sweep.spec, {
        ...t.params,
        ...scheduleAt(schedule, t.pausedAt!).params,
        ...constantsOf(sweep.spec),
      });
      await this.recordAndApply(sweep, t, events, {
        kind: 'continue',
        trial: t.id,
        segment,
        step: t.pausedAt!,
        params,
        t: Date.now(),
      });
    }
  }

  // ---- new trials: TPE suggestions --------------------------------------------------------------------

  /** Whether every trial the sweep will have exists (TPE creates its trials one by one). */
  exhausted(sweep: StoredSweep): boolean {
    return sweep.spec.method !== 'tpe' || sweep.trialIds.length >= sweep.spec.budget.trials;
  }

  /**
   * TPE: creates up to `room` new trials, each suggested from the results so far (and the warm-start
   * sweeps'), the trials still pending counted as the constant liar's worst results. Returns them.
   */
  async suggest(sweep: StoredSweep, trials: Trial[], room: number): Promise<Trial[]> {
    const { spec } = sweep;
    if (spec.method !== 'tpe' || !spec.tpe) return [];
    const want = Math.min(room, spec.budget.trials - sweep.trialIds.length);
    if (want <= 0) return [];
    const { store } = this.deps;
    const space: Record<string, ParameterSpec> = {};
    for (const [name, p] of Object.entries(spec.parameters)) if (p.kind !== 'value') space[name] = p;
    const series = await store.qualityHistories(trials.map((t) => t.id));
    const { complete, pruned, running } = tpeObservations(
      spec,
      trials,
      series,
      await this.deps.liveWorkers(),
    );
    complete.unshift(...(await this.warmObservations(sweep, space)));
    const created: Trial[] = [];
    for (let i = 0; i < want; i++) {
      const index = sweep.trialIds.length;
      const seed = deriveSeed(spec.seed, index);
      const chosen = suggestTpe({
        space,
        complete,
        pruned,
        running,
        config: spec.tpe,
        rng: new Rng((seed ^ 0x7e5e7e5e) >>> 0),
      });
      const plan = { index, seed, params: withDefaults(spec, { ...constantsOf(spec), ...chosen }) };
      const [id] = await store.addTrials(sweep, [plan], (p) => this.firstSegment(spec, p.index));
      const t = await store.trial(id!);
      if (!t) throw new Error(`trial ${id} vanished after it was created`);
      running.push({ params: t.params });
      created.push(t);
      this.deps.log.info(
        {
          sweepId: sweep.id,
          trialId: t.id,
          params: chosen,
          startup: complete.length + pruned.length < spec.tpe.startup_trials,
        },
        'tpe: suggested',
      );
    }
    return created;
  }

  /** The warm-start sweeps' completed trials whose parameters lie in this sweep's space. */
  private async warmObservations(
    sweep: StoredSweep,
    space: Record<string, ParameterSpec>,
  ): Promise<TpeObservation[]> {
    const out: TpeObservation[] = [];
    const sign = this.sign(sweep.spec);
    for (const id of sweep.spec.warm_start ?? []) {
      const old = await this.deps.store.get(id);
      if (!old) continue;
      for (const t of await this.deps.store.trials(old.trialIds)) {
        if (t.state !== 'completed' || t.result === undefined) continue;
        if (!Object.entries(space).every(([n, p]) => inDomain(p as SearchedParameter, t.params[n]))) continue;
        // The same metric and goal (checked on submit).
        out.push({ params: t.params, value: sign * t.result });
      }
    }
    return out;
  }

  /** More trials for a sweep (`gantry extend`): planned now for random and pbt-replay, suggested later for tpe. */
  async extend(sweep: StoredSweep, more: number): Promise<number> {
    const before = sweep.spec.budget.trials;
    sweep.spec = { ...sweep.spec, budget: { ...sweep.spec.budget, trials: before + more } };
    if (sweep.spec.method === 'random' || sweep.spec.method === 'pbt-replay') {
      const plan = planSweep(sweep.spec).filter((p) => p.index >= sweep.trialIds.length);
      await this.deps.store.addTrials(sweep, plan, (p) => this.firstSegment(sweep.spec, p.index));
    }
    await this.deps.store.reopen(sweep);
    return sweep.spec.budget.trials;
  }
}

/**
 * What TPE learns from a sweep's trials: completed ones by their result, ones a scheduler or health rule
 * stopped by their last evaluation (ranked after every completed one, the furthest trained first), and the
 * ones still pending (queued, or running on a worker with a live heartbeat: a trial whose worker vanished
 * is not pending any more, or its liar would hold its region until the queue gives up on it). Failed and
 * diverged trials teach nothing, as in Optuna. Values are losses.
 */
export function tpeObservations(
  spec: SweepSpec,
  trials: readonly Trial[],
  series: ReadonlyMap<string, readonly QualityPoint[]>,
  liveWorkers: ReadonlySet<string>,
): { complete: TpeObservation[]; pruned: TpePruned[]; running: { params: Record<string, number> }[] } {
  const sign = spec.metric.goal === 'minimize' ? 1 : -1;
  const complete: TpeObservation[] = [];
  const pruned: TpePruned[] = [];
  const running: { params: Record<string, number> }[] = [];
  for (const t of trials) {
    if (t.state === 'completed' && t.result !== undefined)
      complete.push({ params: t.params, value: sign * t.result });
    else if (t.state === 'stopped') {
      const last = metricPoints(spec, series.get(t.id) ?? []).at(-1);
      if (last) pruned.push({ params: t.params, step: last.step, value: last.value });
    } else if (!TERMINAL_TRIAL_STATES.has(t.state)) {
      if (t.state !== 'running' || (t.worker !== undefined && liveWorkers.has(t.worker)))
        running.push({ params: t.params });
    }
  }
  return { complete, pruned, running };
}

/** The decision already recorded for trial `trial`'s ready point before segment `segment`, if any. */
function readyEvent(
  events: readonly SearchEvent[],
  trial: string,
  segment: number,
): Exploit | Continue | undefined {
  // The last one: an exploit whose source could not be copied is followed by the continue that replaced it.
  return events.findLast(
    (e): e is Exploit | Continue =>
      (e.kind === 'exploit' || e.kind === 'continue') && e.trial === trial && e.segment === segment,
  );
}

/** Values (as measured) recorded at rung `rung` of bracket `bracket`, in the order they were recorded. */
function rungValues(events: readonly SearchEvent[], bracket: number, rung: number): number[] {
  return events
    .filter((e): e is Rung => e.kind === 'rung' && e.bracket === bracket && e.rung === rung)
    .map((e) => e.value);
}

/** A trial's evaluations of the sweep's metric as losses (lower is better), oldest first. */
export function metricPoints(spec: SweepSpec, history: readonly QualityPoint[]): Point[] {
  const sign = spec.metric.goal === 'minimize' ? 1 : -1;
  const name = spec.metric.name as keyof QualityPoint;
  const out: Point[] = [];
  for (const q of history) {
    const v = q[name];
    if (typeof v === 'number' && Number.isFinite(v)) out.push({ step: q.step, value: sign * v });
  }
  return out;
}

/**
 * The step at which a segment starting at `step` pauses: PBT's next ready point, ASHA promote's next rung,
 * pbt-replay's next change; undefined when it trains to the end.
 */
export function nextPause(spec: SweepSpec, index: number, step: number): number | undefined {
  const { steps } = spec.budget;
  const sch = spec.scheduler;
  let next: number | undefined;
  if (sch?.type === 'pbt') next = (Math.floor(step / sch.interval) + 1) * sch.interval;
  else if (sch?.type === 'asha' && sch.mode === 'promote')
    next = ashaRungs(sch, ashaBracket(index, sch.brackets), steps).find((r) => r > step);
  else if (spec.method === 'pbt-replay' && spec.replay?.schedule)
    next = scheduleAt(spec.replay.schedule, step).next;
  return next !== undefined && next < steps ? next : undefined;
}
