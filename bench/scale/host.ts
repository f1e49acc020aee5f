/**
 * One host process of the scale simulation: `node --import tsx bench/scale/host.ts '<HostSpec JSON>'`.
 * Runs one real GantryWorker per id (concurrency 1, like one GPU per pod) with the fake trainer, all
 * sharing one data set cache, configured from the environment like any worker (REDIS_URL, S3_*,
 * GANTRY_PREFIX; GANTRY_BACKEND=cpu, which the fake trainer never uses). Prints `ready <n>` once every
 * worker has started; SIGTERM closes them all (running trials checkpoint and go back to the queue), then
 * prints `closed` and exits.
 */
import { createLogger, loadConfig, ObjectStore } from '../../packages/shared/src/index.ts';
import { DatasetCache } from '../../packages/worker/src/data/dataset-cache.ts';
import { GantryWorker } from '../../packages/worker/src/index.ts';
import { type FakeTrainerDesign, fakeTrainerLauncher } from './fake-trainer.ts';

/** What the parent tells a host (its one argument, as JSON). */
export interface HostSpec {
  /** Worker ids (GANTRY_WORKER_ID of each). */
  ids: string[];
  fake: FakeTrainerDesign;
  /** The host's data set cache. */
  cacheDir: string;
}

/** Workers started at once (each opens its Redis connections and a metrics port). */
const START_BATCH = 25;

async function main(spec: HostSpec, env: NodeJS.ProcessEnv): Promise<void> {
  const base = loadConfig(env);
  const log = createLogger('scale-host', base.logLevel);
  const objects = new ObjectStore(base.s3, { retry: { maxElapsedMs: base.s3RetryMs, maxDelayMs: 5000 } });
  const datasets = new DatasetCache({
    store: objects,
    log,
    dir: spec.cacheDir,
    maxBytes: base.datasets.cacheBytes,
  });
  const launchTrainer = fakeTrainerLauncher(spec.fake);
  const workers = spec.ids.map(
    (id) =>
      new GantryWorker(loadConfig({ ...env, GANTRY_WORKER_ID: id }), log.child({ workerId: id }), {
        concurrency: 1,
        launchTrainer,
        datasets,
      }),
  );
  let closing = false;
  const close = () => {
    if (closing) return;
    closing = true;
    void (async () => {
      await Promise.all(workers.map((w) => w.close()));
      await objects.close();
      process.stdout.write('closed\n');
      process.exit(0);
    })();
  };
  process.on('SIGTERM', close);
  process.on('SIGINT', close);
  for (let i = 0; i < workers.length; i += START_BATCH)
    await Promise.all(workers.slice(i, i + START_BATCH).map((w) => w.start()));
  process.stdout.write(`ready ${workers.length}\n`);
}

await main(JSON.parse(process.argv[2] ?? '{}') as HostSpec, process.env);
