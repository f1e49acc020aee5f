import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Coordinator } from '@gantry/coordinator';
import { createLogger, loadConfig } from '@gantry/shared';
import { afterAll, describe, expect, it } from 'vitest';
import {
  findOnPath,
  spawnWorker,
  stopWorker,
  type WorkerProcess,
} from '../packages/coordinator/src/local-stack/index.ts';
import { testEnv } from './support/infra.ts';
import {
  type LocalPrometheus,
  type PromSample,
  startPrometheus,
  testPrometheusConfig,
} from './support/prometheus.ts';
import { waitFor } from './support/wait-for.ts';

const READ_TOKEN = 'prometheus-read-token-0123456789';
const ADMIN_TOKEN = 'admin-token-of-the-test-0123456789';
const prometheusBin = await findOnPath('prometheus');

describe('Prometheus scraping a Gantry that requires tokens (infra/prometheus/prometheus-token.yml)', () => {
  let coordinator: Coordinator | undefined;
  let worker: WorkerProcess | undefined;
  let prom: LocalPrometheus | undefined;
  let dir: string | undefined;
  afterAll(async () => {
    await prom?.close();
    if (worker) await stopWorker(worker, 10_000);
    await coordinator?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('discovers and scrapes the coordinator and the workers with a read token', async ({ skip }) => {
    if (prometheusBin === undefined) return skip('prometheus is not installed (apt-get install prometheus)');
    dir = await mkdtemp(join(tmpdir(), 'gantry-prom-auth-'));
    const tokens = join(dir, 'tokens');
    await writeFile(tokens, `admin ops ${ADMIN_TOKEN}\nread prometheus ${READ_TOKEN}\n`);
    const env = testEnv({ GANTRY_API_TOKENS_FILE: tokens, GANTRY_PORT: '0' });
    coordinator = new Coordinator(loadConfig(env), createLogger('prom-auth', 'silent'), {
      schedulerIntervalMs: 500,
    });
    const url = (await coordinator.start({ host: '127.0.0.1', port: 0 }))!;
    worker = await spawnWorker('prom-w1', env, join(dir, 'logs'));
    const [w] = await waitFor(
      'the worker to register',
      async () => {
        const ws = await coordinator!.workers();
        return ws.length > 0 ? ws : undefined;
      },
      60_000,
    );
    // The worker's /metrics is locked like the coordinator's.
    expect((await fetch(w!.metricsUrl)).status).toBe(401);
    expect((await fetch(w!.metricsUrl, { headers: { authorization: `Bearer ${READ_TOKEN}` } })).status).toBe(
      200,
    );

    const text = await readFile(
      join(import.meta.dirname, '../infra/prometheus/prometheus-token.yml'),
      'utf8',
    );
    expect(text.match(/http:\/\/127\.0\.0\.1:8080/g)).toHaveLength(2);
    const config = testPrometheusConfig(text, url, 1);
    prom = await startPrometheus({ config, files: { 'gantry-read-token': READ_TOKEN } });
    const p = prom;
    const up = await waitFor(
      'both jobs to be scraped',
      async () => {
        const r = await p.query('up');
        const result = (r.data?.result ?? []) as PromSample[];
        const jobs = new Map(result.map((s) => [s.metric.job, s.value[1]]));
        return jobs.get('gantry-coordinator') === '1' && jobs.get('gantry-workers') === '1'
          ? result
          : undefined;
      },
      60_000,
    );
    expect(up.map((s) => s.metric.job).sort()).toEqual(['gantry-coordinator', 'gantry-workers']);
    // What it scraped is Gantry's: the worker's own series, labelled with its id.
    await waitFor(
      'gantry_worker_info from the worker',
      async () => {
        const r = await p.query('gantry_worker_info{worker="prom-w1"}');
        return ((r.data?.result ?? []) as PromSample[]).length === 1 ? true : undefined;
      },
      30_000,
    );
  }, 180_000);
});
