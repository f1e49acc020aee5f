import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../support/wait-for.ts';
import { FaultStack, faultFigures, faultSpec, figuresLine } from './harness.ts';

const EVERY = 20;

/** A 1 MiB tmpfs (a data set cache disk with no room for a data set), or undefined where mounting is not allowed. */
function tinyDisk(): string | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'gantry-full-disk-'));
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status === 0) return dir;
  rmSync(dir, { recursive: true, force: true });
  return undefined;
}

const disk = tinyDisk();

describe('a worker whose data set cache disk is full', () => {
  let stack: FaultStack | undefined;
  afterEach(async () => {
    await stack?.close();
    stack = undefined;
    if (disk) {
      spawnSync('umount', [disk]);
      rmSync(disk, { recursive: true, force: true });
    }
  });

  // Mounting a tmpfs needs root (CAP_SYS_ADMIN), which the dev machine and CI have.
  it.skipIf(!disk)(
    'gives its trial back without using an attempt and pauses; another worker trains it',
    async () => {
      stack = await FaultStack.start({
        workers: 2,
        workerEnv: (i) => (i === 1 ? { GANTRY_CACHE_DIR: disk } : {}),
      });
      const { id, trialIds } = await stack.submit(
        faultSpec('disk-full', { trials: 2, parallel: 2, steps: 100, every: EVERY }),
      );
      const gaveBack = await waitFor(
        'w1 to give a trial back',
        async () => {
          for (const t of trialIds) {
            const e = (await stack!.store.events(t)).find(
              (x) => x.event === 'gave-back' && x.worker === 'w1',
            );
            if (e) return e;
          }
          return undefined;
        },
        120_000,
      );
      expect(gaveBack.reason).toMatch(
        /data set cache .* is full \(no space left on device\): fashion-mnist@\S+ needs [\d.]+ MiB/,
      );
      // Its heartbeat says why it takes no jobs.
      const w1 = await waitFor(
        'w1 to report its fault',
        async () =>
          (await stack!.store.redis.hget(stack!.store.keys.workers, 'w1'))?.includes('"fault"') || undefined,
        10_000,
      );
      expect(w1).toBe(true);
      expect((await stack.waitForSweepEnd(id)).state).toBe('completed');
      const f = await faultFigures(stack, trialIds);
      console.log(figuresLine('data set cache disk full on one worker', f, EVERY));
      const trials = await stack.trials(trialIds);
      expect(trials.every((t) => t.worker === 'w2')).toBe(true);
      // Given back, not failed: no job used more than the attempt that completed it.
      const jobs = await stack.queue.getJobs(['completed']);
      expect(jobs.map((j) => j.attemptsMade)).toEqual([1, 1]);
      // Nothing half-written left on the full disk.
      const left = spawnSync('find', [disk!, '-type', 'f'], { encoding: 'utf8' })
        .stdout.trim()
        .split('\n')
        .filter(Boolean);
      expect(left.filter((p) => p.includes('/shards/'))).toEqual([]);
      expect(f).toMatchObject({ lost: 0, completedTwice: 0, staleWrites: 0, overwritten: 0, stepsLost: 0 });
    },
    300_000,
  );
});
