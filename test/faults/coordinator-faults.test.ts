import { afterAll, describe, expect, it } from 'vitest';
import { FaultStack, faultFigures, faultSpec, figuresLine } from './harness.ts';

const EVERY = 20;

/** The most trials of the sweep that ran at once, from their attempt logs (start to done). */
async function mostAtOnce(stack: FaultStack, trialIds: readonly string[]): Promise<number> {
  const spans: [number, number][] = [];
  for (const id of trialIds) {
    const events = await stack.store.events(id);
    const start = events.find((e) => e.event === 'start')?.t ?? 0;
    const end = events.findLast((e) => e.event === 'done')?.t ?? Number.POSITIVE_INFINITY;
    spans.push([start, end]);
  }
  return Math.max(...spans.map(([s]) => spans.filter(([a, b]) => a <= s && s < b).length));
}

describe('the coordinator SIGKILLed', () => {
  // Both cases on one stack, booted by the first: the second stops the coordinator the first left running
  // and starts one that kills itself at its own point. What each reads is its own sweep's.
  let shared: FaultStack | undefined;
  afterAll(async () => {
    await shared?.close();
  });
  /** The stack, its coordinator (re)started to SIGKILL itself at `point`. */
  async function stackKilledAt(point: string): Promise<FaultStack> {
    // One worker more than budget.parallel: a miscounted trial would run beside the two allowed.
    if (!shared) {
      shared = await FaultStack.start({ workers: 3, coordinatorEnv: { GANTRY_FAULT_KILL_AT: point } });
    } else {
      await shared.stopCoordinator();
      await shared.startCoordinator({ GANTRY_FAULT_KILL_AT: point });
    }
    return shared;
  }

  for (const [point, what] of [
    ['dispatch:3', 'between queueing a job and marking its trial dispatched'],
    ['result:1', "between recording a trial's result and updating the sweep"],
  ] as const) {
    it(`${what}: a restarted coordinator carries on, queueing nothing twice`, async () => {
      const stack = await stackKilledAt(point);
      const { id, trialIds } = await stack.submit(
        faultSpec(`coord-${point.replace(':', '-')}`, { trials: 4, parallel: 2, steps: 60, every: EVERY }),
      );
      const code = await stack.coordinator!.exited;
      expect(stack.coordinator!.child.signalCode ?? code).toBe('SIGKILL');
      if (point.startsWith('dispatch')) {
        // The job it queued is taken by a worker while no coordinator runs: a trial running that its
        // record says was never dispatched, which the restarted coordinator must count and settle.
        await stack.waitForTrial(
          'the queued trial to start',
          trialIds,
          (t) => t.state === 'running' && !t.dispatched,
        );
      }
      await stack.startCoordinator();
      const faultEnd = Date.now();
      expect((await stack.waitForSweepEnd(id)).state).toBe('completed');
      const f = await faultFigures(stack, trialIds, { faultEnd });
      console.log(figuresLine(`coordinator SIGKILLed ${what}`, f, EVERY));
      const trials = await stack.trials(trialIds);
      expect(trials.map((t) => t.state)).toEqual(['completed', 'completed', 'completed', 'completed']);
      expect(trials.every((t) => typeof t.result === 'number')).toBe(true);
      // Every trial's record knows it was dispatched (so its job's end is settled from the queue).
      expect(trials.map((t) => t.dispatched)).toEqual([true, true, true, true]);
      // One job per trial, each run once; never more trials at once than budget.parallel. (The queue also
      // holds the jobs of the sweep before, on this stack.)
      const jobs = (
        await stack.queue.getJobs(['completed', 'failed', 'active', 'waiting', 'delayed'])
      ).filter((j) => j.data.sweepId === id);
      expect(jobs.map((j) => j.id).sort()).toEqual([...trialIds].sort());
      expect(jobs.every((j) => j.attemptsMade === 1)).toBe(true);
      expect(await mostAtOnce(stack, trialIds)).toBeLessThanOrEqual(2);
      expect(f).toMatchObject({ lost: 0, completedTwice: 0, staleWrites: 0, overwritten: 0, stepsLost: 0 });
    }, 300_000);
  }
});
