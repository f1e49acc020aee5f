import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ObjectStore } from '@gantry/shared';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import {
  findOnPath,
  type LocalS3,
  pickFreePort,
  S3RVER_CREDENTIALS,
  spawnWorker,
  startS3Server,
  stopWorker,
  type WorkerProcess,
} from '../packages/coordinator/src/local-stack/index.ts';
import { selfSignedCertificate } from './support/certificate.ts';
import { testEnv, uniqueId } from './support/infra.ts';
import { waitFor } from './support/wait-for.ts';

const GANTRY = join(import.meta.dirname, '../packages/coordinator/bin/gantry.mjs');
const openssl = await findOnPath('openssl');

/** Runs the `gantry` CLI to its end; resolves with its exit code and output. */
function cli(
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [GANTRY, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      err += d;
    });
    child.once('exit', (code) => resolve({ code, out, err }));
  });
}

/** redis-server with TLS only (no plain port) and a password; resolves once it is ready. */
async function startTlsRedis(
  dir: string,
  cert: { keyFile: string; certFile: string },
  password: string,
): Promise<{ port: number; child: ChildProcess }> {
  const port = await pickFreePort();
  const child = spawn(
    'redis-server',
    [
      '--port',
      '0',
      '--tls-port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--tls-cert-file',
      cert.certFile,
      '--tls-key-file',
      cert.keyFile,
      '--tls-ca-cert-file',
      cert.certFile,
      '--tls-auth-clients',
      'no',
      '--requirepass',
      password,
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      dir,
      '--maxmemory-policy',
      'noeviction',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let log = '';
  child.stdout!.on('data', (d) => {
    log += d;
  });
  await waitFor(
    'redis-server (TLS) to be ready',
    async () => (/ready to accept/i.test(log) ? true : undefined),
    10_000,
  );
  return { port, child };
}

describe('a whole stack behind TLS and secrets: rediss:// with a password, S3 over HTTPS with a private CA, API tokens', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => {});
  });

  it.skipIf(!openssl)(
    'trains a sweep through it, the CLI with its token, and no secret in any log line',
    async () => {
      const dir = await mkdtemp(join(tmpdir(), 'gantry-secure-'));
      cleanups.push(() => rm(dir, { recursive: true, force: true }));
      const cert = await selfSignedCertificate(dir);
      const redisPassword = `redis-pw-${uniqueId('x')}-secret`;
      const apiToken = `api-token-${uniqueId('x')}-secret`;
      const redis = await startTlsRedis(dir, cert, redisPassword);
      cleanups.push(async () => {
        redis.child.kill('SIGKILL');
      });
      const bucket = uniqueId('tls');
      const s3: LocalS3 = await startS3Server({ buckets: [bucket], tls: { key: cert.key, cert: cert.cert } });
      cleanups.push(() => s3.close());
      const apiPort = await pickFreePort();
      const logDir = join(dir, 'logs');
      const env = testEnv({
        REDIS_URL: `rediss://:${redisPassword}@127.0.0.1:${redis.port}`,
        GANTRY_REDIS_CA_FILE: cert.certFile,
        S3_ENDPOINT: s3.endpoint,
        S3_CA_FILE: cert.certFile,
        S3_BUCKET: bucket,
        GANTRY_API_TOKEN: apiToken,
        GANTRY_PORT: String(apiPort),
        GANTRY_API_URL: `http://127.0.0.1:${apiPort}`,
        LOG_LEVEL: 'debug',
      });
      expect(s3.endpoint).toMatch(/^https:/);

      // Without the CA neither store can be reached: the certificate is checked.
      const noCa = new ObjectStore({
        endpoint: s3.endpoint,
        region: 'us-east-1',
        bucket,
        forcePathStyle: true,
        ...S3RVER_CREDENTIALS,
      });
      await expect(noCa.put('x', 'y')).rejects.toThrow(/self[- ]signed|certificate/i);
      await noCa.close();
      const plain = new Redis(`rediss://:${redisPassword}@127.0.0.1:${redis.port}`, {
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
        lazyConnect: true,
      });
      const redisErrors: string[] = [];
      plain.on('error', (e: Error) => redisErrors.push(e.message));
      await expect(plain.connect()).rejects.toThrow();
      expect(redisErrors.join('; ')).toMatch(/self[- ]signed|certificate/i);
      plain.disconnect();

      const coordinatorLog = join(logDir, 'coordinator.log');
      await mkdir(logDir, { recursive: true });
      const coordinator = spawn(process.execPath, [GANTRY, 'coordinator'], {
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      cleanups.push(async () => {
        coordinator.kill('SIGTERM');
      });
      let coordinatorOut = '';
      coordinator.stdout.on('data', (d) => {
        coordinatorOut += d;
      });
      let coordinatorErr = '';
      coordinator.stderr.on('data', (d) => {
        coordinatorErr += d;
      });
      await waitFor(
        'the coordinator to listen',
        async () => (coordinatorOut.includes('listening') ? true : undefined),
        60_000,
      );
      const worker: WorkerProcess = await spawnWorker('tls-w1', env, logDir);
      cleanups.push(() => stopWorker(worker, 10_000));

      const specFile = join(dir, 'spec.yaml');
      await writeFile(
        specFile,
        [
          'name: secure',
          'model: dcgan',
          'dataset: fashion-mnist',
          'method: grid',
          'metric: {name: d_loss, goal: minimize}',
          'health: {eval_every_steps: 0}',
          'budget: {trials: 1, parallel: 1, steps: 40}',
          'checkpoint: {every_steps: 20}',
          'parameters: {batch_size: {value: 16}, base_filters: {value: 8}, latent_dim: {value: 16}}',
          '',
        ].join('\n'),
      );
      // The CLI sends the token from the environment...
      const submitted = await cli(['submit', specFile], env);
      expect(submitted.err).toBe('');
      expect(submitted.code).toBe(0);
      const sweepId = /submitted sweep (\S+)/.exec(submitted.out)![1]!;
      const status = await waitFor(
        'the sweep to complete',
        async () => {
          const r = await cli(['status', sweepId], env);
          return r.code === 0 && /completed/.test(r.out.split('\n')[0] ?? '') ? r : undefined;
        },
        180_000,
      );
      expect(status.out).toMatch(/completed/);
      // ...or from its config file; without either it says what to set.
      const { GANTRY_API_TOKEN: _token, ...noToken } = env;
      const refused = await cli(['status', sweepId], {
        ...noToken,
        GANTRY_CLI_CONFIG: join(dir, 'none.json'),
      });
      expect(refused.code).toBe(1);
      expect(refused.err).toMatch(/needs a bearer token .*\[UNAUTHORIZED\]/);
      expect(refused.err).toMatch(/set GANTRY_API_TOKEN, or "token" in .*none\.json/);
      const configFile = join(dir, 'cli.json');
      await writeFile(configFile, JSON.stringify({ api_url: env.GANTRY_API_URL, token: apiToken }), {
        mode: 0o600,
      });
      const viaFile = await cli(['status', sweepId], {
        ...noToken,
        GANTRY_API_URL: '',
        GANTRY_CLI_CONFIG: configFile,
      });
      expect(viaFile.err).toBe('');
      expect(viaFile.code).toBe(0);

      // No secret in any log line of the run.
      await stopWorker(worker, 10_000);
      coordinator.kill('SIGTERM');
      await new Promise((r) => coordinator.once('exit', r));
      await writeFile(coordinatorLog, coordinatorErr);
      const logs: Record<string, string> = {};
      for (const f of await readdir(logDir)) logs[f] = await readFile(join(logDir, f), 'utf8');
      expect(Object.keys(logs).sort()).toEqual(['coordinator.log', 'tls-w1.log']);
      expect(logs['tls-w1.log']).toMatch(/"msg":"worker started"/);
      expect(logs['coordinator.log']).toMatch(/"msg":"sweep submitted"/);
      for (const [file, text] of Object.entries(logs)) {
        for (const secret of [redisPassword, apiToken, S3RVER_CREDENTIALS.secretAccessKey]) {
          expect(text.includes(secret), `${file} holds a secret`).toBe(false);
        }
      }
    },
    300_000,
  );

  it('a coordinator or worker on a non-loopback address without a token refuses to start, saying what to set', async () => {
    const env = testEnv({ GANTRY_HOST: '0.0.0.0', GANTRY_API_TOKEN: '' });
    const c = await cli(['coordinator'], env);
    expect(c.code).toBe(1);
    expect(c.err).toMatch(
      /GANTRY_API_TOKEN: the coordinator API would listen on 0\.0\.0\.0, reachable from other machines, without authentication: set GANTRY_API_TOKEN/,
    );
    const logDir = await mkdtemp(join(tmpdir(), 'gantry-open-'));
    const w = await spawnWorker('open-w1', env, logDir);
    expect(await w.exited).toBe(1);
    expect(await readFile(w.logFile, 'utf8')).toMatch(
      /the worker metrics endpoint would listen on 0\.0\.0\.0/,
    );
    await rm(logDir, { recursive: true, force: true });
  }, 120_000);
});
