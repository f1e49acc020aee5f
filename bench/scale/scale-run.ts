/**
 * One N of the scale simulation: the real coordinator as a child process, N simulated workers on a few
 * host processes, a random sweep submitted through the HTTP API; a warm-up with all N workers busy, then a
 * measurement window (planning, dispatch latency, CPU and memory, Redis, API latency), then a sample of
 * the coordinator's own Redis commands. Each N has its own GANTRY_PREFIX, so runs on one Redis never mix.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ObjectStoreConfig } from '../../packages/shared/src/index.ts';
import type { FakeTrainerDesign } from './fake-trainer.ts';
import { cpuSeconds, dispatchSamples, percentile } from './measure.ts';
import { type CommandSample, sampleCommands } from './monitor.ts';
import { type BenchProcess, startCoordinator, startHost } from './processes.ts';
import { redisAt, SweepReader, type TrialTimes } from './sweep-reads.ts';
import { type Usage, usageBetween, usageNow } from './usage.ts';

/** One N's design, every field given (the bench and the test compile their own). */
export interface ScaleRunConfig {
  /** N: simulated workers, one trial each; also the sweep's budget.parallel. */
  workers: number;
  /** Host processes the workers are spread over. */
  hosts: number;
  /** Trials of the sweep. */
  trials: number;
  /** budget.steps of each trial (the fake trainer reports them over its wall length). */
  steps: number;
  fake: FakeTrainerDesign;
  /** Seconds after all N workers are busy before the window opens. */
  warmupS: number;
  /** The window: seconds, or `sweep`: from the submission until the sweep has ended (the test). */
  window: number | 'sweep';
  /** Milliseconds between the window's `GET /v1/sweeps/:id` requests. */
  apiEveryMs: number;
  /** Seconds of MONITOR after the window (0: none). */
  monitorS: number;
  /** Then cancel the sweep and sample a sweep of this many trials the same way (0: none). */
  smallTrials: number;
  redisUrl: string;
  s3: Required<Pick<ObjectStoreConfig, 'endpoint' | 'bucket' | 'accessKeyId' | 'secretAccessKey'>>;
  prefix: string;
  /** Logs and data set caches of this N. */
  workDir: string;
  /** The sweep's data set (a built-in one, pushed before). */
  dataset: string;
  say: (line: string) => void;
}

/** Milliseconds figures of one latency measurement. */
export interface LatencyFigures {
  p50_ms: number;
  p90_ms: number;
  p99_ms: number;
  max_ms: number;
  samples: number;
}

/** The coordinator's cost over a short sample: its CPU and the Redis commands it sent. */
export interface PassCost {
  trials: number;
  coordinator_cores: number;
  commands: CommandSample;
}

/** What one N measured. */
export interface ScaleRow {
  workers: number;
  hosts: number;
  trials: number;
  prefix: string;
  sweepId: string;
  window_s: number;
  planning: { post_ms: number; coordinator_log: Record<string, number> };
  /** From a slot freeing (trial endedAt) to its job being taken (job processedOn): dispatchSamples. */
  dispatch: LatencyFigures & { pending: number; latencies_ms: number[] };
  /** The same pairing to the trial's running write (trial startedAt). */
  dispatch_started_at: LatencyFigures & { pending: number };
  /**
   * The coordinator's part: the same pairing to the job being added to the queue (job timestamp); the rest
   * of `dispatch` is the queue's and the workers' (a free worker taking the job).
   */
  dispatch_queued: LatencyFigures & { pending: number };
  completed_in_window: number;
  usage: Usage;
  api: LatencyFigures & { bytes: number };
  states: Record<string, number>;
  retried_trials: number;
  pass?: PassCost;
  pass_small?: PassCost;
}

function figures(xs: number[]): LatencyFigures {
  return {
    p50_ms: percentile(xs, 50),
    p90_ms: percentile(xs, 90),
    p99_ms: percentile(xs, 99),
    max_ms: xs.length ? Math.max(...xs) : Number.NaN,
    samples: xs.length,
  };
}

/** The sweep spec the bench submits: random search over DCGAN's learning rates and beta1. */
export function scaleSpec(c: Pick<ScaleRunConfig, 'workers' | 'trials' | 'steps' | 'dataset'>, tag: string) {
  return {
    name: `scale-${tag}`,
    model: 'dcgan',
    dataset: c.dataset,
    method: 'random',
    metric: { name: 'g_loss', goal: 'minimize' },
    seed: 1,
    budget: { trials: c.trials, parallel: Math.min(c.workers, c.trials), steps: c.steps },
    checkpoint: { every_steps: c.steps },
    // No quality evaluation, so no classifier is needed; the sweep ranks by the step metric g_loss.
    health: { eval_every_steps: 0 },
    parameters: {
      lr_g: { distribution: 'log_uniform', min: 1e-5, max: 1e-3 },
      lr_d: { distribution: 'log_uniform', min: 1e-5, max: 1e-3 },
      beta1: { distribution: 'uniform', min: 0, max: 0.9 },
      batch_size: { value: 64 },
    },
  };
}

async function post(url: string, body: unknown): Promise<{ id: string }> {
  const res = await fetch(url, {
    method: 'POST',
    body: JSON.stringify(body),
    headers: { 'content-type': 'application/json' },
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`POST ${url}: HTTP ${res.status}: ${text.slice(0, 500)}`);
  return JSON.parse(text) as { id: string };
}

/** Polls `fn` every `everyMs` until it is true; throws naming `what` after `timeoutMs`. */
async function until(what: string, fn: () => Promise<boolean>, timeoutMs: number, everyMs = 250) {
  const end = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Numeric fields of the coordinator's 'sweep submitted' log line that look like durations. */
async function plannedFigures(logFile: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const line of (await readFile(logFile, 'utf8')).split('\n')) {
    if (!line.includes('sweep submitted')) continue;
    try {
      for (const [k, v] of Object.entries(JSON.parse(line) as Record<string, unknown>))
        if (typeof v === 'number' && /(ms|Ms|seconds|_s)$/.test(k)) out[k] = v;
    } catch {
      // not a JSON line
    }
  }
  return out;
}

/** Runs one N; every process it started is stopped when it returns or throws. */
export async function runScale(c: ScaleRunConfig): Promise<ScaleRow> {
  const n = c.workers;
  await mkdir(c.workDir, { recursive: true });
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    REDIS_URL: c.redisUrl,
    S3_ENDPOINT: c.s3.endpoint,
    S3_BUCKET: c.s3.bucket,
    AWS_ACCESS_KEY_ID: c.s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: c.s3.secretAccessKey,
    GANTRY_PREFIX: c.prefix,
    GANTRY_BACKEND: 'cpu',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  };
  for (const k of ['GANTRY_FAULT_KILL_AT', 'GANTRY_FAULT_NAN_AT_STEP', 'GANTRY_PORT', 'GANTRY_WORKER_ID'])
    delete env[k];
  const reader = new SweepReader(redisAt(c.redisUrl), c.prefix);
  const started: BenchProcess[] = [];
  try {
    const perHost = Math.ceil(n / c.hosts);
    const coordinatorLog = join(c.workDir, 'coordinator.log');
    const t0 = Date.now();
    // Workers need only Redis and S3: they start beside the coordinator.
    const [coordinator] = await Promise.all([
      startCoordinator({ ...env, LOG_LEVEL: 'info' }, coordinatorLog).then((p) => {
        started.push(p);
        return p;
      }),
      ...Array.from({ length: c.hosts }, (_, h) => {
        const ids = Array.from(
          { length: Math.max(0, Math.min(perHost, n - h * perHost)) },
          (_, i) => `sim-h${h}-w${String(h * perHost + i).padStart(4, '0')}`,
        );
        return startHost(
          { ids, fake: c.fake, cacheDir: join(c.workDir, `cache-h${h}`) },
          { ...env, LOG_LEVEL: 'warn' },
          join(c.workDir, `host-${h}.log`),
        ).then((p) => started.push(p));
      }),
    ]);
    const hostPids = started.filter((p) => p !== coordinator).map((p) => p.pid);
    await until(`${n} workers to heartbeat`, async () => (await reader.workers()) >= n, 120_000);
    c.say(`  N=${n}: coordinator and ${c.hosts} host(s) up in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    const api = coordinator.url;
    const spec = scaleSpec(c, `n${n}`);
    const p0 = performance.now();
    const { id: sweepId } = await post(`${api}/v1/sweeps`, spec);
    const postMs = performance.now() - p0;
    c.say(`  N=${n}: POST /v1/sweeps (${c.trials} trials) ${postMs.toFixed(0)} ms; sweep ${sweepId}`);
    const ended = async () =>
      ['completed', 'failed', 'cancelled'].includes((await reader.sweepState(sweepId)) ?? '');

    if (c.window !== 'sweep') {
      const w0 = Date.now();
      await until(
        `${n} jobs active`,
        async () => (await reader.activeJobs()) >= Math.min(n, c.trials),
        300_000,
      );
      c.say(
        `  N=${n}: all ${n} workers busy after ${((Date.now() - w0) / 1000).toFixed(1)} s; warm-up ${c.warmupS} s`,
      );
      await sleep(c.warmupS * 1000);
    }
    // The window: usage between two snapshots; GET /v1/sweeps/:id every apiEveryMs.
    const from = Date.now();
    const before = await usageNow({ coordinator: coordinator.pid, hosts: hostPids, reader });
    const apiMs: number[] = [];
    let apiBytes = 0;
    let open = true;
    const apiLoop = (async () => {
      for (let next = from + c.apiEveryMs / 2; open; next += c.apiEveryMs) {
        await sleep(Math.max(0, next - Date.now()));
        if (!open) break;
        const q0 = performance.now();
        const res = await fetch(`${api}/v1/sweeps/${sweepId}`);
        const body = await res.arrayBuffer();
        if (!res.ok) throw new Error(`GET /v1/sweeps/${sweepId}: HTTP ${res.status}`);
        apiMs.push(performance.now() - q0);
        apiBytes = body.byteLength;
      }
    })();
    const peaks = { rss: 0, redisMemory: 0 };
    const sampler = (async () => {
      while (open) {
        const u = await usageNow({ coordinator: coordinator.pid, hosts: [], reader });
        peaks.rss = Math.max(peaks.rss, u.coordinatorRss);
        peaks.redisMemory = Math.max(peaks.redisMemory, u.redisMemory);
        await sleep(1000);
      }
    })();
    if (c.window === 'sweep') await until(`sweep ${sweepId} to end`, ended, 600_000, 200);
    else await sleep(c.window * 1000);
    open = false;
    const to = Date.now();
    const after = await usageNow({ coordinator: coordinator.pid, hosts: hostPids, reader });
    await Promise.all([apiLoop, sampler]);
    const usage = usageBetween(before, after, peaks);

    // Starts for the slots freed near the window's end may come a little later.
    const pair = (t: TrialTimes[], start: (x: TrialTimes) => number | undefined) =>
      dispatchSamples({
        ends: t.flatMap((x) => x.endedAt ?? []),
        starts: t.flatMap((x) => start(x) ?? []),
        slots: Math.min(n, c.trials),
        jobs: c.trials,
        from,
        to,
      });
    let trials = await reader.trials(sweepId, c.trials);
    for (let i = 0; i < 20 && pair(trials, (x) => x.processedOn).pending > 0; i++) {
      await sleep(500);
      trials = await reader.trials(sweepId, c.trials);
    }
    const byQueue = pair(trials, (x) => x.processedOn);
    const byTrial = pair(trials, (x) => x.startedAt);
    const byCoordinator = pair(trials, (x) => x.queuedAt);
    const states: Record<string, number> = {};
    for (const t of trials) states[t.state] = (states[t.state] ?? 0) + 1;
    const row: ScaleRow = {
      workers: n,
      hosts: c.hosts,
      trials: c.trials,
      prefix: c.prefix,
      sweepId,
      window_s: (to - from) / 1000,
      planning: { post_ms: postMs, coordinator_log: await plannedFigures(coordinatorLog) },
      dispatch: {
        ...figures(byQueue.latencies),
        pending: byQueue.pending,
        latencies_ms: byQueue.latencies.map((x) => Math.round(x)),
      },
      dispatch_started_at: { ...figures(byTrial.latencies), pending: byTrial.pending },
      dispatch_queued: { ...figures(byCoordinator.latencies), pending: byCoordinator.pending },
      completed_in_window: trials.filter(
        (t) => t.endedAt !== undefined && t.endedAt >= from && t.endedAt <= to,
      ).length,
      usage,
      api: { ...figures(apiMs), bytes: apiBytes },
      states,
      retried_trials: trials.filter((t) => t.attempts > 1).length,
    };
    if (c.monitorS > 0 && !(await ended())) {
      row.pass = await passCost(c, coordinator.pid, c.trials);
      if (c.smallTrials > 0) {
        await post(`${api}/v1/sweeps/${sweepId}/cancel`, {});
        const small = await post(
          `${api}/v1/sweeps`,
          scaleSpec({ ...c, trials: c.smallTrials }, `n${n}-small`),
        );
        const busy = Math.min(n, c.smallTrials);
        await until(
          `${busy} jobs of the small sweep active`,
          async () => (await reader.activeJobs()) >= busy,
          120_000,
        );
        c.say(`  N=${n}: small sweep ${small.id} (${c.smallTrials} trials) busy; sampling`);
        await sleep(5000);
        row.pass_small = await passCost(c, coordinator.pid, c.smallTrials);
      }
    }
    return row;
  } finally {
    await Promise.all(started.map((p) => p.close()));
    await reader.close();
  }
}

/** The coordinator's CPU and Redis commands over `c.monitorS` seconds. */
async function passCost(c: ScaleRunConfig, pid: number, trials: number): Promise<PassCost> {
  const cpu0 = await cpuSeconds(pid);
  const t0 = performance.now();
  const commands = await sampleCommands(c.redisUrl, pid, c.monitorS);
  const cores = (await cpuSeconds(pid)) - cpu0;
  return { trials, coordinator_cores: cores / ((performance.now() - t0) / 1000), commands };
}
