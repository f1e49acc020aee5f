/**
 * `npm run bench -- scale`: the coordinator at scale, by simulation. Starts Redis (redis-server) and S3
 * (s3rver) once; for each N, the real coordinator (`gantry coordinator`, a child process with its own
 * GANTRY_PREFIX) and N real GantryWorkers with a fake in-process trainer (bench/scale/fake-trainer.ts)
 * spread over a few host processes, and a random sweep of --trials trials with budget.parallel N submitted
 * through the HTTP API. After a warm-up with all N workers busy, measures over --seconds: planning time,
 * dispatch latency (slot freed -> next job taken), coordinator CPU and memory, Redis commands/s and memory,
 * `GET /v1/sweeps/:id` latency; then the coordinator's own Redis commands from a MONITOR sample, and at
 * the first N the same with a small sweep (what a pass costs per idle trial). Prints the tables and the
 * issue's targets; writes bench/results/scale.json.
 *
 *   npm run bench -- scale [--workers 10,100,1000] [--trials 10000] [--seconds 60] [--warmup 20]
 *                          [--trial-seconds 20,60] [--time-scale 6] [--api-samples 20] [--monitor 5]
 *                          [--small-trials 100] [--per-host 250] [--max-hosts 4]
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  S3RVER_CREDENTIALS,
  startRedisServer,
  startS3Server,
} from '../packages/coordinator/src/local-stack/index.ts';
import { ObjectStore } from '../packages/shared/src/index.ts';
import { compileFakeTrainer } from './scale/fake-trainer.ts';
import { passTable, scaleTable, targetLines } from './scale/report.ts';
import { runScale, type ScaleRow } from './scale/scale-run.ts';
import { pushSimDataset, SIM_DATASET } from './scale/sim-dataset.ts';
import { redisAt } from './scale/sweep-reads.ts';

const here = dirname(fileURLToPath(import.meta.url));
const say = (s: string) => process.stdout.write(`${s}\n`);

/** The bench's options, parsed and checked; errors name the flag. */
export interface ScaleBenchDesign {
  workers: number[];
  trials: number;
  steps: number;
  seconds: number;
  warmupS: number;
  apiSamples: number;
  monitorS: number;
  smallTrials: number;
  perHost: number;
  maxHosts: number;
  fake: ReturnType<typeof compileFakeTrainer>;
}

/** Parses `npm run bench -- scale`'s arguments. */
export function compileScaleBench(argv: string[]): ScaleBenchDesign {
  const { values: a } = parseArgs({
    args: argv,
    options: {
      workers: { type: 'string', default: '10,100,1000' },
      trials: { type: 'string', default: '10000' },
      steps: { type: 'string', default: '6000' },
      seconds: { type: 'string', default: '60' },
      warmup: { type: 'string', default: '20' },
      'trial-seconds': { type: 'string', default: '20,60' },
      'time-scale': { type: 'string', default: '6' },
      'api-samples': { type: 'string', default: '20' },
      monitor: { type: 'string', default: '5' },
      'small-trials': { type: 'string', default: '100' },
      'per-host': { type: 'string', default: '250' },
      'max-hosts': { type: 'string', default: '4' },
    },
  });
  const int = (flag: keyof typeof a, min: number) => {
    const n = Number(a[flag]);
    if (!Number.isInteger(n) || n < min)
      throw new Error(`--${flag}: expected an integer >= ${min}, got ${a[flag]}`);
    return n;
  };
  const list = (flag: keyof typeof a) =>
    String(a[flag])
      .split(',')
      .map((s) => Number(s.trim()));
  const workers = list('workers');
  if (workers.some((n) => !Number.isInteger(n) || n < 1))
    throw new Error(`--workers: expected positive integers separated by commas, got ${a.workers}`);
  const [min, max] = list('trial-seconds');
  if (min === undefined || max === undefined)
    throw new Error(`--trial-seconds: expected min,max, got ${a['trial-seconds']}`);
  return {
    workers,
    trials: int('trials', 1),
    steps: int('steps', 1),
    seconds: int('seconds', 5),
    warmupS: int('warmup', 0),
    apiSamples: int('api-samples', 1),
    monitorS: int('monitor', 0),
    smallTrials: int('small-trials', 0),
    perHost: int('per-host', 1),
    maxHosts: int('max-hosts', 1),
    fake: compileFakeTrainer({
      trialSeconds: [min, max],
      timeScale: Number(a['time-scale']),
    }),
  };
}

/** The process's open-file limit (Max open files, soft), from /proc/self/limits. */
async function openFileLimit(): Promise<number> {
  const m = /^Max open files\s+(\d+)/m.exec(await readFile('/proc/self/limits', 'utf8'));
  return m ? Number(m[1]) : Number.NaN;
}

/** Runs the bench; `argv` as after `scale` on the command line. */
export async function runScaleBench(argv: string[]): Promise<void> {
  const d = compileScaleBench(argv);
  const [tmin, tmax] = d.fake.trialSeconds;
  say(
    `scale bench: N = ${d.workers.join(', ')}; a random dcgan sweep of ${d.trials} trials on ${SIM_DATASET} (health.eval_every_steps 0), budget.parallel = N`,
  );
  say(
    `  fake trainer: progress every ${d.fake.progressMs} ms of wall time; a trial lasts ${tmin}-${tmax} s of wall time (spread by index); 1 wall s = ${d.fake.timeScale} simulated s, a checkpoint every ${d.fake.checkpointSimS} simulated s (${(d.fake.checkpointSimS / d.fake.timeScale).toFixed(0)} wall s) and at the last step, committed through the fenced script with no object written`,
  );
  say(
    `  warm-up ${d.warmupS} s after all N workers are busy, window ${d.seconds} s; ${availableParallelism()} cores`,
  );
  const work = await mkdtemp(join(tmpdir(), 'gantry-scale-'));
  const redis = await startRedisServer();
  const s3 = await startS3Server({ buckets: ['gantry-scale'] });
  const admin = redisAt(redis.url);
  try {
    // ~6 connections per worker (its client, pub/sub, and the trial and augmentation consumers' two each).
    await admin
      .config('SET', 'maxclients', '16000')
      .catch((err: Error) => say(`  maxclients: ${err.message}`));
    const maxclients = ((await admin.config('GET', 'maxclients')) as string[])[1];
    const fdLimit = await openFileLimit();
    say(
      `  redis-server ${redis.url}: maxclients ${maxclients}; open-file limit of this process and its children ${fdLimit}`,
    );
    const s3Config = {
      endpoint: s3.endpoint,
      bucket: 'gantry-scale',
      region: 'us-east-1',
      forcePathStyle: true,
      ...S3RVER_CREDENTIALS,
    };
    const objects = new ObjectStore(s3Config);
    const version = await pushSimDataset(objects);
    await objects.close();
    say(`  data set ${SIM_DATASET}@${version} pushed (64 images of 28x28x1; the fake trainer reads none)`);
    const rows: ScaleRow[] = [];
    for (const [i, n] of d.workers.entries()) {
      await admin.flushall();
      const hosts = Math.min(d.maxHosts, Math.ceil(n / d.perHost));
      const row = await runScale({
        workers: n,
        hosts,
        trials: d.trials,
        steps: d.steps,
        fake: d.fake,
        warmupS: d.warmupS,
        window: d.seconds,
        apiEveryMs: (d.seconds * 1000) / d.apiSamples,
        monitorS: d.monitorS,
        smallTrials: i === 0 ? d.smallTrials : 0,
        redisUrl: redis.url,
        s3: s3Config,
        prefix: `scale-n${n}-${Date.now().toString(36)}`,
        workDir: join(work, `n${n}`),
        dataset: SIM_DATASET,
        say,
      });
      rows.push(row);
      say(
        `  N=${n}: dispatch p50 ${row.dispatch.p50_ms.toFixed(0)} / p99 ${row.dispatch.p99_ms.toFixed(0)} ms over ${row.dispatch.samples} slots (${row.dispatch.pending} pending; to the job queued p50 ${row.dispatch_queued.p50_ms.toFixed(0)} / p99 ${row.dispatch_queued.p99_ms.toFixed(0)} ms; to the trial's running write p50 ${row.dispatch_started_at.p50_ms.toFixed(0)} / p99 ${row.dispatch_started_at.p99_ms.toFixed(0)} ms); ${row.completed_in_window} trials ended in the window; coordinator ${row.usage.coordinator_cores.toFixed(2)} cores, Redis ${row.usage.redis_cores.toFixed(2)}, hosts ${row.usage.hosts_cores.toFixed(2)}, bench+s3rver ${row.usage.bench_cores.toFixed(2)}, machine ${row.usage.machine_busy_cores.toFixed(2)} of ${availableParallelism()}; ${row.usage.redis_clients} Redis clients`,
      );
    }
    say('');
    say(scaleTable(rows));
    say('');
    say(passTable(rows));
    say('');
    for (const line of targetLines(rows)) say(`target: ${line}`);
    const file = join(here, 'results', 'scale.json');
    await mkdir(dirname(file), { recursive: true });
    await writeFile(
      file,
      `${JSON.stringify(
        {
          date: new Date().toISOString(),
          command: `npm run bench -- scale ${argv.join(' ')}`.trim(),
          machine: { cores: availableParallelism(), node: process.version },
          design: {
            ...d,
            dataset: SIM_DATASET,
            redis_maxclients: Number(maxclients),
            open_file_limit: fdLimit,
          },
          rows,
        },
        null,
        1,
      )}\n`,
    );
    say(`wrote ${file}`);
  } finally {
    await admin.quit().catch(() => {});
    await s3.close();
    await redis.close();
    await rm(work, { recursive: true, force: true });
  }
}
