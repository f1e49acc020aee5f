import { execFileSync } from 'node:child_process';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../support/wait-for.ts';
import { FaultStack, faultFigures, faultSpec, figuresLine } from './harness.ts';

const EVERY = 20;

/** Process ids of `pid`'s children whose command line matches `pattern` (all of them by default). */
function childrenOf(pid: number, pattern = '.'): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(pid), '-f', pattern], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

describe('faults of workers and trainers', () => {
  // The OOM kill, the freeze and the corruption run one after another on one stack, booted by the first:
  // each ends with its sweep completed and both workers taking jobs, but the corruption's, which kills one
  // and so comes last. What each reads is its own sweep's, and of a log what was written during it.
  let shared: FaultStack | undefined;
  const sharedStack = async () => {
    shared ??= await FaultStack.start({ workers: 2 });
    return shared;
  };
  let own: FaultStack | undefined;
  afterEach(async () => {
    await own?.close();
    own = undefined;
  });
  afterAll(async () => {
    await shared?.close();
  });

  it('a trainer killed by the out-of-memory killer is retried from its last checkpoint', async () => {
    const stack = await sharedStack();
    const { id, trialIds } = await stack.submit(
      faultSpec('oom', { trials: 2, parallel: 2, steps: 160, every: EVERY }),
    );
    const victim = await stack.waitForTrial(
      'a running trial past its second checkpoint',
      trialIds,
      (t) => t.state === 'running' && (t.latestCheckpoint?.step ?? 0) >= 2 * EVERY && t.step < 120,
    );
    const worker = stack.worker(victim.worker!);
    const [trainer] = childrenOf(worker.child.pid!, 'gantry-trainer');
    expect(trainer).toBeDefined();
    process.kill(trainer!, 'SIGKILL'); // what the OOM killer sends; the worker itself lives on
    const faultEnd = Date.now();
    expect((await stack.waitForSweepEnd(id)).state).toBe('completed');
    const f = await faultFigures(stack, trialIds, { faultEnd });
    console.log(figuresLine('trainer OOM-killed', f, EVERY));
    const events = await stack.store.events(victim.id);
    const failed = events.find((e) => e.event === 'failed');
    expect(failed?.reason).toMatch(/trainer process was killed \(SIGKILL: out of memory/);
    expect(worker.child.exitCode).toBeNull();
    expect(f).toMatchObject({
      lost: 0,
      completedTwice: 0,
      staleWrites: 0,
      overwritten: 0,
      failedAttempts: 1,
    });
    expect(f.maxStepsLostPerTrial).toBeLessThanOrEqual(EVERY);
  }, 300_000);

  it('a worker frozen past its lock loses the trial to another worker, and every write it then tries is refused', async () => {
    const stack = await sharedStack();
    const logFrom = new Map(
      await Promise.all(
        stack.workers.map(async (w) => [w.id, (await stack.workerLog(w.id)).length] as const),
      ),
    );
    // 200 steps: the other worker still trains it (100 steps or more) when the frozen one wakes and writes.
    const { id, trialIds } = await stack.submit(
      faultSpec('freeze', { trials: 1, parallel: 1, steps: 200, every: EVERY }),
    );
    const victim = await stack.waitForTrial(
      'the trial past its first checkpoint',
      trialIds,
      (t) => t.state === 'running' && (t.latestCheckpoint?.step ?? 0) >= EVERY && t.step < 100,
    );
    const frozen = stack.worker(victim.worker!);
    const other = stack.workers.find((w) => w !== frozen)!;
    const pids = [frozen.child.pid!, ...childrenOf(frozen.child.pid!)];
    for (const pid of pids) process.kill(pid, 'SIGSTOP');
    // Recovery counts from the freeze: until the trial is trained past where the frozen worker left it.
    const faultEnd = Date.now();
    // Frozen past its 4 s lock: the other worker takes the trial over and trains it.
    const taken = await stack.waitForTrial(
      'the other worker to train the trial',
      trialIds,
      (t) => t.worker === other.id && t.state === 'running' && t.step > (t.resumedFrom ?? 0) + 5,
      60_000,
    );
    for (const pid of pids) process.kill(pid, 'SIGCONT');
    // The woken worker finds out at its first write and stops its trainer.
    await waitFor(
      'the woken worker to see its writes refused',
      async () =>
        (await stack.workerLog(frozen.id, logFrom.get(frozen.id))).includes('lock-lost') ? true : undefined,
      60_000,
    );
    expect((await stack.waitForSweepEnd(id)).state).toBe('completed');
    const f = await faultFigures(stack, trialIds, { faultEnd });
    console.log(figuresLine('worker frozen (SIGSTOP) past its lock', f, EVERY));
    const t = (await stack.store.trial(victim.id))!;
    expect(t.worker).toBe(other.id);
    expect(taken.resumedFrom).toBeGreaterThanOrEqual(EVERY);
    // Nothing of the frozen worker's after the hand-over: not a progress point, not a checkpoint, not the end.
    const history = await stack.store.history(victim.id, 100_000);
    const handover = (await stack.store.events(victim.id)).filter((e) => e.event === 'start').at(-1)!;
    expect(history.filter((p) => p.worker === frozen.id && p.t > handover.t)).toEqual([]);
    expect(
      (await stack.store.checkpoints(victim.id)).filter((c) => c.worker === frozen.id && c.t > handover.t),
    ).toEqual([]);
    expect(f).toMatchObject({ lost: 0, completedTwice: 0, staleWrites: 0, overwritten: 0 });
    expect(f.maxStepsLostPerTrial).toBeLessThanOrEqual(EVERY);
  }, 300_000);

  it('a worker that dies between its final checkpoint and done: the retry trains nothing and reports the same summary', async () => {
    own = await FaultStack.start({
      workers: 2,
      workerEnv: (i) => (i === 1 ? { GANTRY_FAULT_KILL_AT: 'before-done:1' } : {}),
    });
    const stack = own;
    const { id, trialIds } = await stack.submit(
      faultSpec('end', { trials: 2, parallel: 2, steps: 100, every: EVERY }),
    );
    await stack.worker('w1').exited; // killed itself on reaching its first trial's end
    const faultEnd = Date.now();
    expect((await stack.waitForSweepEnd(id)).state).toBe('completed');
    const f = await faultFigures(stack, trialIds, { faultEnd });
    console.log(figuresLine('worker killed between final checkpoint and done', f, EVERY));
    const trials = await stack.trials(trialIds);
    const resumed = trials.find((t) => t.resumedFrom === 100)!;
    expect(resumed).toBeDefined();
    // Its summary is the one the dead attempt would have sent: from the run's tail kept in the checkpoint.
    const manifest = await stack.objects.getJson<{ tail: { stats: number[][]; imagesPerSec: number } }>(
      resumed.latestCheckpoint!.manifestKey,
    );
    const mean = (i: number) =>
      manifest.tail.stats.reduce((a, s) => a + s[i]!, 0) / manifest.tail.stats.length;
    expect(manifest.tail.stats).toHaveLength(10);
    expect(resumed.summary?.d_loss).toBeCloseTo(mean(0), 10);
    expect(resumed.summary?.g_loss).toBeCloseTo(mean(1), 10);
    expect(resumed.summary?.d_loss).toBeGreaterThan(0);
    expect(resumed.summary?.images_per_sec).toBe(manifest.tail.imagesPerSec);
    expect(resumed.result).toBe(resumed.summary?.d_loss);
    expect(f).toMatchObject({ lost: 0, completedTwice: 0, staleWrites: 0, overwritten: 0, stepsLost: 0 });
  }, 300_000);

  it('a corrupted checkpoint object: the resume falls back to the previous good checkpoint, with the reason', async () => {
    const stack = await sharedStack();
    const { id, trialIds } = await stack.submit(
      faultSpec('corrupt', { trials: 1, parallel: 1, steps: 200, every: EVERY }),
    );
    const victim = await stack.waitForTrial(
      'the trial past its third checkpoint',
      trialIds,
      (t) => t.state === 'running' && (t.latestCheckpoint?.step ?? 0) >= 3 * EVERY && t.step < 150,
    );
    const holder = stack.worker(victim.worker!);
    // Frozen first (it can commit nothing more, and holds the lock so no one resumes yet), then the
    // pointer's checkpoint corrupted in the store - one flipped byte in G's weights - then killed.
    const pids = [holder.child.pid!, ...childrenOf(holder.child.pid!)];
    for (const pid of pids) process.kill(pid, 'SIGSTOP');
    const bad = (await stack.store.trial(victim.id))!.latestCheckpoint!;
    const gKey = bad.manifestKey.replace('manifest.json', 'g.bin');
    const bytes = await stack.objects.get(gKey);
    const mid = bytes.length >> 1;
    bytes[mid] = bytes[mid]! ^ 0xff;
    await stack.objects.put(gKey, bytes);
    for (const pid of pids) process.kill(pid, 'SIGKILL');
    await holder.exited;
    const faultEnd = Date.now();
    expect((await stack.waitForSweepEnd(id)).state).toBe('completed');
    const f = await faultFigures(stack, trialIds, { faultEnd, corrupted: new Set([bad.manifestKey]) });
    console.log(figuresLine('checkpoint object corrupted in S3 (+ its worker SIGKILLed)', f, EVERY));
    const fallback = (await stack.store.events(victim.id)).find((e) => e.event === 'fallback')!;
    expect(fallback).toMatchObject({ from: bad.step, step: bad.step - EVERY });
    expect(fallback.reason).toMatch(/g\.bin is corrupt: size or sha256 does not match/);
    const t = (await stack.store.trial(victim.id))!;
    expect(t.resumedFrom).toBe(bad.step - EVERY);
    // The kill cost what it trained past the pointer, the corruption one interval more.
    expect(f).toMatchObject({ lost: 0, completedTwice: 0, staleWrites: 0, overwritten: 0 });
    expect(f.maxStepsLostPerTrial).toBeLessThanOrEqual(2 * EVERY);
  }, 300_000);
});
