import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../support/wait-for.ts';
import { FaultStack, faultFigures, faultSpec, figuresLine } from './harness.ts';

const EVERY = 20;
/**
 * Each case's sweep: 4 trials of 120 steps, 2 at a time. Every fault strikes once one of the first two is
 * past step 50 (the store's outage then blocks both at their next checkpoint, past their pointers, with
 * steps still to train), and the last two start after it: both kinds of trial are covered.
 */
const SWEEP = { trials: 4, parallel: 2, steps: 120, every: EVERY };

describe('faults of Redis and the object store', () => {
  // One stack for the three cases, in order: each ends with its sweep completed and Redis and the object
  // store back up, which is how the next begins (what each reads is its own sweep's). Booting one costs
  // seconds of CPU; the case of Redis's last second lost, which restarts Redis from an older copy, is last.
  let stack: FaultStack;
  beforeAll(async () => {
    stack = await FaultStack.start({ workers: 2, appendFsync: 'always' });
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('the object store gone for 30 s while trials checkpoint: uploads wait it out, no trial fails', async () => {
    const logFrom = await Promise.all(['w1', 'w2'].map(async (w) => (await stack.workerLog(w)).length));
    const { id, trialIds } = await stack.submit(faultSpec('s3-outage', SWEEP));
    await stack.waitForTrial('a trial past step 50', trialIds, (t) => t.state === 'running' && t.step >= 50);
    const pointers = new Map((await stack.trials(trialIds)).map((t) => [t.id, t.latestCheckpoint?.step]));
    await stack.stopS3();
    const down = Date.now();
    // While it is down, the running trials block at their next checkpoint and the pointers stay put.
    await waitFor(
      'the running trials to reach a checkpoint they cannot upload',
      async () => {
        const running = (await stack.trials(trialIds)).filter((t) => t.state === 'running');
        return running.length > 0 &&
          running.every((t) => t.step % EVERY === 0 && t.step > (pointers.get(t.id) ?? 0))
          ? true
          : undefined;
      },
      30_000,
    );
    const during = await stack.trials(trialIds);
    for (const t of during) {
      if (t.state === 'running') expect(t.latestCheckpoint?.step).toBe(pointers.get(t.id));
    }
    await new Promise((r) => setTimeout(r, Math.max(0, 30_000 - (Date.now() - down))));
    await stack.startS3();
    const faultEnd = Date.now();
    expect((await stack.waitForSweepEnd(id)).state).toBe('completed');
    const f = await faultFigures(stack, trialIds, { faultEnd });
    console.log(figuresLine('object store down 30 s', f, EVERY));
    expect(f).toMatchObject({
      lost: 0,
      completedTwice: 0,
      staleWrites: 0,
      overwritten: 0,
      failedAttempts: 0,
    });
    expect(f.stepsLost).toBe(0);
    // The workers said what they were waiting for.
    const logs = (await stack.workerLog('w1', logFrom[0])) + (await stack.workerLog('w2', logFrom[1]));
    expect(logs).toMatch(/object store: put sweeps\/\S+ failed \(ECONNREFUSED/);
  }, 300_000);

  it('Redis SIGKILLed mid-sweep and restarted from its AOF (appendfsync always)', async () => {
    expect(stack.appendFsync).toBe('always');
    const { id, trialIds } = await stack.submit(faultSpec('redis-kill', SWEEP));
    await stack.waitForTrial('a trial past step 50', trialIds, (t) => t.state === 'running' && t.step >= 50);
    await stack.killRedis();
    await new Promise((r) => setTimeout(r, 3000));
    await stack.restartRedis();
    const faultEnd = Date.now();
    expect((await stack.waitForSweepEnd(id)).state).toBe('completed');
    const f = await faultFigures(stack, trialIds, { faultEnd });
    console.log(figuresLine('Redis SIGKILLed 3 s (AOF, appendfsync always)', f, EVERY));
    expect(f).toMatchObject({ lost: 0, completedTwice: 0, staleWrites: 0, overwritten: 0 });
    expect(f.maxStepsLostPerTrial).toBeLessThanOrEqual(EVERY);
  }, 300_000);

  it('Redis with appendfsync everysec losing its last second of writes (a power cut) does no harm', async () => {
    await stack.setAppendFsync('everysec');
    const { id, trialIds } = await stack.submit(faultSpec('redis-everysec', SWEEP));
    await stack.waitForTrial('a trial past step 50', trialIds, (t) => t.state === 'running' && t.step >= 50);
    // The files as they were a second before the crash: what a machine that lost power keeps at worst.
    const snapshot = await stack.snapshotRedis();
    const snapAt = Date.now();
    const before = await stack.trials(trialIds);
    // A second or more of training after the copy: writes the crash will lose.
    await waitFor(
      'a second of progress after the copy',
      async () => {
        const now = await stack.trials(trialIds);
        const steps = now.reduce((n, t, i) => n + t.step - before[i]!.step, 0);
        return Date.now() - snapAt >= 1000 && steps >= 5 ? true : undefined;
      },
      60_000,
    );
    const killAt = Date.now();
    await stack.killRedis();
    await stack.restartRedis(snapshot);
    const faultEnd = Date.now();
    expect((await stack.waitForSweepEnd(id)).state).toBe('completed');
    const f = await faultFigures(stack, trialIds, { faultEnd });
    // The lost second is real: the progress reported in it is gone from every trial's history.
    const histories = await Promise.all(trialIds.map((t) => stack.store.history(t, 100_000)));
    const inLostSecond = histories.flat().filter((p) => p.t > snapAt + 100 && p.t < killAt - 100);
    expect(inLostSecond).toEqual([]);
    console.log(figuresLine('Redis lost its last 1 s of writes (everysec, power cut)', f, EVERY));
    expect(f).toMatchObject({ lost: 0, completedTwice: 0, staleWrites: 0, overwritten: 0 });
    expect(f.maxStepsLostPerTrial).toBeLessThanOrEqual(EVERY);
  }, 300_000);
});
