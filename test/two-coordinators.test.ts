import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, loadConfig, redisKeys, TRIAL_QUEUE, type TrialEvent } from '@gantry/shared';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { compileFakeTrainer, fakeTrainerLauncher } from '../bench/scale/fake-trainer.ts';
import { pickFreePort } from '../packages/coordinator/src/local-stack/index.ts';
import { SweepStore } from '../packages/coordinator/src/sweep-store.ts';
import type { TrainerLauncher } from '../packages/worker/src/index.ts';
import { GantryWorker } from '../packages/worker/src/worker.ts';
import { testEnv } from './support/infra.ts';
import { waitFor } from './support/wait-for.ts';

const GANTRY = join(import.meta.dirname, '../packages/coordinator/bin/gantry.mjs');
const LEASE_MS = 2000;

interface CoordinatorProcess {
  id: string;
  child: ChildProcess;
  url: string;
}

/** Starts a `gantry coordinator` process named `id` and waits until it listens. */
async function startCoordinator(
  id: string,
  env: NodeJS.ProcessEnv,
  logDir: string,
): Promise<CoordinatorProcess> {
  const port = await pickFreePort();
  const child = spawn(process.execPath, [GANTRY, 'coordinator'], {
    env: { ...env, GANTRY_PORT: String(port), GANTRY_COORDINATOR_ID: id, LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stderr?.pipe(createWriteStream(join(logDir, `${id}.log`)));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const m = /listening on (\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code, sig) =>
      reject(new Error(`coordinator ${id} exited (${sig ?? code}) before listening`)),
    );
  });
  return { id, child, url };
}

const children: ChildProcess[] = [];
const workers: GantryWorker[] = [];
afterAll(async () => {
  for (const w of workers) await w.close();
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

describe('two coordinators on one Redis', () => {
  it('the second takes over within a lease period after the leader is SIGKILLed, dispatching nothing twice', async () => {
    const env = testEnv({ GANTRY_LEASE_MS: String(LEASE_MS) });
    const logDir = await mkdtemp(join(tmpdir(), 'gantry-two-coordinators-'));
    const [a, b] = await Promise.all([
      startCoordinator('c-a', env, logDir),
      startCoordinator('c-b', env, logDir),
    ]);
    children.push(a.child, b.child);
    const redis = new Redis(env.REDIS_URL!, { maxRetriesPerRequest: null });
    const keys = redisKeys(env.GANTRY_PREFIX!);
    const store = new SweepStore(redis, env.GANTRY_PREFIX!);

    // Six workers for three places: a second scheduler dispatching beside the first would show as a
    // fourth trainer running at once.
    let running = 0;
    let mostAtOnce = 0;
    const fake = fakeTrainerLauncher(compileFakeTrainer({ progressMs: 200, trialSeconds: [0.8, 1.6] }));
    const counted: TrainerLauncher = (e) => {
      const child = fake(e);
      running += 1;
      mostAtOnce = Math.max(mostAtOnce, running);
      child.once('exit', () => {
        running -= 1;
      });
      return child;
    };
    const config = loadConfig({ ...env, GANTRY_BACKEND: 'cpu' });
    const log = createLogger('worker', 'warn');
    for (let i = 0; i < 6; i++) {
      const w = new GantryWorker({ ...config, worker: { ...config.worker, id: `w${i}` } }, log, {
        concurrency: 1,
        launchTrainer: counted,
      });
      workers.push(w);
      await w.start();
    }

    const res = await fetch(`${b.url}/v1/sweeps`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        name: 'two-coordinators',
        model: 'dcgan',
        dataset: 'fashion-mnist',
        method: 'random',
        metric: { name: 'g_loss', goal: 'minimize' },
        budget: { trials: 12, parallel: 3, steps: 40 },
        checkpoint: { every_steps: 40 },
        health: { eval_every_steps: 0 },
        parameters: { lr_g: { distribution: 'log_uniform', min: 1e-5, max: 1e-3 } },
      }),
    });
    expect(res.status).toBe(201);
    const { id, trialIds } = (await res.json()) as { id: string; trialIds: string[] };

    // Submitted through b; whichever holds the lease schedules. Kill the leader once trials are finishing.
    const leaderOf = async () => (await redis.get(keys.leader))?.split(':')[1];
    const first = await waitFor('a leader', leaderOf, 10_000);
    const [leader, other] = first === a.id ? [a, b] : [b, a];
    await waitFor(
      'three trials to complete',
      async () =>
        (await store.trials(trialIds)).filter((t) => t.state === 'completed').length >= 3 ? true : undefined,
      60_000,
    );
    // Per-trial series come from the leader only (a sum over coordinators counts each trial once).
    const scrape = async (c: CoordinatorProcess) => (await fetch(`${c.url}/metrics`)).text();
    const [ours, theirs] = [await scrape(leader), await scrape(other)];
    expect(ours).toMatch(/^gantry_coordinator_leader 1$/m);
    expect(ours).toMatch(/^gantry_trial_objective\{/m);
    expect(theirs).toMatch(/^gantry_coordinator_leader 0$/m);
    expect(theirs).not.toMatch(/^gantry_trial_objective\{/m);
    leader.child.kill('SIGKILL');
    const killedAt = Date.now();
    // Polled every 10 ms for a close figure.
    while ((await leaderOf()) !== other.id) {
      if (Date.now() - killedAt > 10_000) throw new Error('the other coordinator did not take over in 10 s');
      await new Promise((r) => setTimeout(r, 10));
    }
    const takeoverMs = Date.now() - killedAt;
    expect(await scrape(other)).toMatch(/^gantry_coordinator_leader 1$/m);
    console.log(
      `two coordinators: the survivor led ${takeoverMs} ms after the leader's SIGKILL (lease ${LEASE_MS} ms)`,
    );
    // The lease runs out at most LEASE_MS after the kill and the survivor tries every third of a lease, so
    // it leads by 4/3 of a lease; two leases leave room for timers on a machine running two test files.
    expect(takeoverMs).toBeLessThan(2 * LEASE_MS);

    const ended = await waitFor(
      'the sweep to end',
      async () => {
        const s = await store.get(id);
        return s && ['completed', 'failed', 'cancelled'].includes(s.state) ? s : undefined;
      },
      90_000,
    );
    expect(ended.state).toBe('completed');
    const trials = await store.trials(trialIds);
    expect(trials.map((t) => t.state)).toEqual(trialIds.map(() => 'completed'));
    expect(trials.every((t) => typeof t.result === 'number')).toBe(true);
    // Never more trainers at once than the sweep's places, and every trial trained once: one attempt, one start.
    expect(mostAtOnce).toBeLessThanOrEqual(3);
    expect(trials.map((t) => t.attempts)).toEqual(trialIds.map(() => 1));
    for (const t of trials) {
      const events = (await redis.lrange(keys.trialEvents(t.id), 0, -1)).map(
        (e) => JSON.parse(e) as TrialEvent,
      );
      expect(events.filter((e) => e.event === 'start')).toHaveLength(1);
    }
    const queue = new Queue(TRIAL_QUEUE, { connection: redis.duplicate(), prefix: env.GANTRY_PREFIX });
    expect((await queue.getJobCounts('completed')).completed).toBe(12);
    await queue.close();
    redis.disconnect();
  });
});
