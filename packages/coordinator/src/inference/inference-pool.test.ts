import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, InferenceError, type InferRequest, type TrialJob } from '@gantry/shared';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { InferencePool, type InferencePoolOptions } from './inference-pool.ts';

/**
 * A stand-in for the worker's inference process, speaking its protocol: the draw's seed says what to do
 * (1 hang, 2 crash, 3 answer an error), its count how long to take (ms); results carry the process id.
 */
const FAKE_CHILD = `
process.on('message', (m) => {
  if (m.type === 'init') {
    if (process.env.FAKE_INIT_FAIL) {
      process.send({ type: 'init-failed', message: 'no backend here' });
      process.exit(1);
    }
    setTimeout(() => process.send({ type: 'ready', backend: 'fake', device: 'none' }), 20);
    return;
  }
  const { seed, count } = m.request.draw;
  if (seed === 1) return;
  if (seed === 2) process.exit(3);
  if (seed === 3) {
    process.send({ type: 'error', id: m.id, error: { code: 'WRONG_INPUT', status: 400, message: 'takes none' } });
    return;
  }
  const rgba = m.request.input?.rgba;
  setTimeout(() => process.send({ type: 'result', id: m.id, result: {
    png: new Uint8Array([1, 2, 3]), step: m.request.checkpoint.step, count: rgba instanceof Uint8Array ? rgba.length : 0,
    cols: 1, tile: { width: 1, height: 1 }, padding: 0, seed: process.pid,
  } }), count ?? 0);
});
process.on('disconnect', () => process.exit(0));
`;

let dir: string;
let entry: string;
const pools: InferencePool[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gantry-infer-pool-'));
  entry = join(dir, 'fake-infer.mjs');
  await writeFile(entry, FAKE_CHILD);
});
afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close()));
  delete process.env.FAKE_INIT_FAIL;
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function pool(opts: Partial<InferencePoolOptions> = {}): InferencePool {
  const p = new InferencePool({
    init: { store: { region: 'us-east-1', bucket: 'b', forcePathStyle: true }, wasmGemm: true },
    log: createLogger('test', 'silent'),
    entry,
    timeoutMs: 5000,
    ...opts,
  });
  pools.push(p);
  return p;
}

/** A request; `seed` and `count` steer the fake process. */
function req(seed?: number, count?: number, rgba?: Uint8Array): InferRequest {
  return {
    job: { trialId: 'sweep-t000' } as TrialJob,
    checkpoint: { step: 20, manifestKey: 'k' },
    ...(rgba ? { input: { width: 1, height: 1, gray: false, hasAlpha: false, rgba } } : {}),
    draw: { ...(seed !== undefined ? { seed } : {}), ...(count !== undefined ? { count } : {}) },
  };
}

async function failure(p: Promise<unknown>): Promise<InferenceError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(InferenceError);
  return err as InferenceError;
}

describe('InferencePool', () => {
  it('answers requests from one warm process, image bytes crossing as bytes', async () => {
    const p = pool();
    const a = await p.run(req(undefined, undefined, new Uint8Array([9, 9, 9, 9])));
    const b = await p.run(req());
    expect(a.step).toBe(20);
    expect(a.count).toBe(4);
    expect(b.seed).toBe(a.seed);
    expect(p.pids).toEqual([a.seed]);
  });

  it('kills a process that does not answer in time (504) and starts another for the next request', async () => {
    const p = pool({ timeoutMs: 500 });
    const first = (await p.run(req())).seed;
    const err = await failure(p.run(req(1)));
    expect(err.code).toBe('INFERENCE_TIMEOUT');
    expect(err.status).toBe(504);
    const next = (await p.run(req())).seed;
    expect(next).not.toBe(first);
  });

  it('answers 500 for a process that crashes, and carries on with a new one', async () => {
    const p = pool();
    const err = await failure(p.run(req(2)));
    expect(err.code).toBe('INFERENCE_FAILED');
    expect(err.message).toMatch(/exited \(code 3\)/);
    expect((await p.run(req())).step).toBe(20);
  });

  it("relays the process' own errors with their code and status", async () => {
    const err = await failure(pool().run(req(3)));
    expect(err.code).toBe('WRONG_INPUT');
    expect(err.status).toBe(400);
    expect(err.message).toBe('takes none');
  });

  it('queues requests up to its queue and refuses more with 503 and the seconds to wait', async () => {
    const p = pool({ concurrency: 1, queue: 1 });
    const running = p.run(req(undefined, 300));
    const waiting = p.run(req(undefined, 10));
    const err = await failure(p.run(req()));
    expect(err.code).toBe('INFERENCE_BUSY');
    expect(err.status).toBe(503);
    expect(err.context.retryAfterS).toBeGreaterThanOrEqual(1);
    expect((await running).step).toBe(20);
    expect((await waiting).step).toBe(20);
  });

  it('runs `concurrency` requests at once in as many processes', async () => {
    const p = pool({ concurrency: 2, queue: 0 });
    const [a, b] = await Promise.all([p.run(req(undefined, 200)), p.run(req(undefined, 200))]);
    expect(a.seed).not.toBe(b.seed);
    expect(p.pids.sort()).toEqual([a.seed, b.seed].sort());
  });

  it('stops a process idle for idleMs; the next request starts one again', async () => {
    const p = pool({ idleMs: 50 });
    const first = (await p.run(req())).seed;
    await new Promise((r) => setTimeout(r, 400));
    expect(p.pids).toEqual([]);
    expect((await p.run(req())).seed).not.toBe(first);
  });

  it('fails the request when the process cannot start', async () => {
    process.env.FAKE_INIT_FAIL = '1';
    const err = await failure(pool().run(req()));
    expect(err.code).toBe('INFERENCE_FAILED');
    expect(err.message).toMatch(/could not start: no backend here|exited/);
  });

  it('refuses waiting requests and stops its processes on close', async () => {
    const p = pool({ concurrency: 1, queue: 2 });
    const running = p.run(req(undefined, 200));
    const waiting = failure(p.run(req()));
    await new Promise((r) => setTimeout(r, 50));
    const closed = p.close();
    expect((await waiting).code).toBe('INFERENCE_BUSY');
    await running.catch(() => {});
    await closed;
    expect(p.pids).toEqual([]);
    expect((await failure(p.run(req()))).code).toBe('INFERENCE_BUSY');
  });
});
