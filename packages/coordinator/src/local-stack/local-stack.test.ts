import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HeadBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../../../../test/support/wait-for.ts';
import { isRedisReachable, S3RVER_CREDENTIALS, startRedisServer, startS3Server } from './index.ts';
import { type WorkerExit, WorkerSupervisor } from './worker-processes.ts';

/** True when something accepts TCP connections on 127.0.0.1:port. */
async function portAccepts(port: number): Promise<boolean> {
  const socket = createConnection({ host: '127.0.0.1', port });
  try {
    await once(socket, 'connect');
    return true;
  } catch {
    return false;
  } finally {
    socket.destroy();
  }
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((fn) => fn()));
});

describe('startRedisServer', () => {
  it('serves SET/GET with noeviction and stops on close()', async () => {
    const redis = await startRedisServer();
    cleanups.push(() => redis.close());
    expect(redis.url).toBe(`redis://127.0.0.1:${redis.port}`);
    expect(await isRedisReachable(redis.url)).toBe(true);

    const client = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    try {
      await client.set('gantry:test', 'hello');
      expect(await client.get('gantry:test')).toBe('hello');
      expect(await client.config('GET', 'maxmemory-policy')).toEqual(['maxmemory-policy', 'noeviction']);
      expect(await client.config('GET', 'save')).toEqual(['save', '']);
      expect(await client.config('GET', 'appendonly')).toEqual(['appendonly', 'no']);
    } finally {
      client.disconnect();
    }

    const first = redis.close();
    expect(redis.close()).toBe(first);
    await first;
    await redis.close();
    expect(await portAccepts(redis.port)).toBe(false);
    expect(await isRedisReachable(redis.url, 200)).toBe(false);
  });

  it('honours appendOnly and runs two servers side by side', async () => {
    const [a, b] = await Promise.all([startRedisServer({ appendOnly: true }), startRedisServer()]);
    cleanups.push(
      () => a.close(),
      () => b.close(),
    );
    expect(a.port).not.toBe(b.port);
    const client = new Redis(a.url);
    try {
      expect(await client.config('GET', 'appendonly')).toEqual(['appendonly', 'yes']);
    } finally {
      client.disconnect();
    }
  });

  it('rejects with a clear error when a fixed port is taken', async () => {
    const a = await startRedisServer();
    cleanups.push(() => a.close());
    await expect(startRedisServer({ port: a.port })).rejects.toThrow(/in use/);
  });

  it('explains how to install redis-server when it is missing', async () => {
    const path = process.env.PATH;
    process.env.PATH = '/nonexistent';
    try {
      await expect(startRedisServer()).rejects.toThrow(/apt-get install redis-server/);
    } finally {
      process.env.PATH = path;
    }
  });
});

describe('isRedisReachable', () => {
  it('is false for a closed port', async () => {
    expect(await isRedisReachable('redis://127.0.0.1:1', 200)).toBe(false);
  });
});

describe('startS3Server', () => {
  it('creates configured buckets and stops on close()', async () => {
    const s3 = await startS3Server({ buckets: ['gantry-a', 'gantry-b'] });
    cleanups.push(() => s3.close());
    expect(s3.endpoint).toBe(`http://127.0.0.1:${s3.port}`);
    const client = new S3Client({
      endpoint: s3.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: S3RVER_CREDENTIALS,
    });
    try {
      await client.send(new HeadBucketCommand({ Bucket: 'gantry-a' }));
      await client.send(new HeadBucketCommand({ Bucket: 'gantry-b' }));
    } finally {
      client.destroy();
    }
    const first = s3.close();
    expect(s3.close()).toBe(first);
    await first;
    expect(await portAccepts(s3.port)).toBe(false);
  });

  it('rejects when a fixed port is taken', async () => {
    const s3 = await startS3Server();
    cleanups.push(() => s3.close());
    await expect(startS3Server({ port: s3.port })).rejects.toThrow(/EADDRINUSE/);
  });
});

describe('WorkerSupervisor', () => {
  /** A stand-in worker entry: appends its pid to a file, then sleeps, or exits at once with code 3. */
  async function entry(kind: 'sleeps' | 'dies'): Promise<{ file: string; pids: string }> {
    const dir = await mkdtemp(join(tmpdir(), 'gantry-supervisor-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const pids = join(dir, 'pids');
    const file = join(dir, `${kind}.mjs`);
    await writeFile(
      file,
      `import { appendFileSync } from 'node:fs';
appendFileSync(${JSON.stringify(pids)}, process.env.GANTRY_WORKER_ID + ' ' + process.pid + '\\n');
${kind === 'sleeps' ? 'setInterval(() => {}, 1000);' : 'process.exit(3);'}
`,
    );
    return { file, pids };
  }
  const started = async (pids: string) =>
    (await readFile(pids, 'utf8').catch(() => '')).split('\n').filter(Boolean);

  it('starts a worker that was SIGKILLed again under its id, and none after stop()', async () => {
    const { file, pids } = await entry('sleeps');
    const exits: WorkerExit[] = [];
    const dir = await mkdtemp(join(tmpdir(), 'gantry-supervisor-logs-'));
    const sup = new WorkerSupervisor({
      env: process.env,
      logDir: dir,
      entry: file,
      minDelayMs: 50,
      onExit: (e) => exits.push(e),
    });
    cleanups.push(() => sup.stop(2000));
    const first = await sup.add('worker-1');
    await waitFor(
      'the first process',
      async () => ((await started(pids)).length === 1 ? true : undefined),
      10_000,
    );
    first.child.kill('SIGKILL');
    await waitFor(
      'a second process',
      async () => ((await started(pids)).length === 2 ? true : undefined),
      10_000,
    );
    expect(exits).toEqual([
      expect.objectContaining({ id: 'worker-1', signal: 'SIGKILL', restarts: 1, restartInMs: 50 }),
    ]);
    const [a, b] = (await started(pids)).map((l) => l.split(' '));
    expect(a?.[0]).toBe('worker-1');
    expect(b?.[0]).toBe('worker-1');
    expect(b?.[1]).not.toBe(a?.[1]);
    expect(sup.workers.map((w) => w.child.pid)).toEqual([Number(b?.[1])]);
    await sup.stop(2000);
    expect(sup.workers.every((w) => w.child.exitCode !== null || w.child.signalCode !== null)).toBe(true);
    expect(exits).toHaveLength(1);
  });

  it('backs off while a worker keeps dying young: the delay doubles up to its cap', async () => {
    const { file } = await entry('dies');
    const exits: WorkerExit[] = [];
    const dir = await mkdtemp(join(tmpdir(), 'gantry-supervisor-logs-'));
    const sup = new WorkerSupervisor({
      env: process.env,
      logDir: dir,
      entry: file,
      minDelayMs: 20,
      maxDelayMs: 80,
      onExit: (e) => exits.push(e),
    });
    cleanups.push(() => sup.stop(2000));
    await sup.add('worker-1');
    await waitFor('five exits', async () => (exits.length >= 5 ? true : undefined), 20_000);
    await sup.stop(2000);
    expect(exits.slice(0, 5).map((e) => [e.code, e.restartInMs])).toEqual([
      [3, 20],
      [3, 40],
      [3, 80],
      [3, 80],
      [3, 80],
    ]);
  });
});
