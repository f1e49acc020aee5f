/**
 * `npm run bench -- search`: random search, ASHA, PBT and TPE on one fixed compute budget B (training steps
 * over all trials) on the example DCGAN sweep (examples/dcgan-fashion.yaml's model and data), at several
 * sweep seeds, through a LocalStack with one worker per core. Per seed and method: the best FLD reached
 * within B, the compute needed to reach random search's best FLD of the same seed, trials started and
 * stopped; the rank correlation of FLD at each rung step with final FLD over the random-search trials;
 * whether the issue's targets are met. Writes bench/results/search.json (search-quick.json with --quick).
 *
 *   npm run bench -- search [--quick] [--seeds 3] [--trials 6] [--steps 500] [--eval-samples 256]
 *                           [--methods random,asha,pbt,tpe]
 *   node --import tsx bench/search.ts [the same options]
 *
 * Compute is counted from the trials' step histories (bench/search-accounting.ts), so it does not depend
 * on how fast the machine was; only the wall-time estimate printed first does.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { LocalStack } from '../packages/coordinator/src/local-stack/index.ts';
import {
  ashaRungs,
  compileSweepSpec,
  createLogger,
  type QualityPoint,
  TERMINAL_TRIAL_STATES,
  type TrialEvent,
  type TrialMetrics,
  type TrialRecord,
} from '../packages/shared/src/index.ts';
import { type BenchDesign, METHODS, type Method, type MethodRun, reportSearch } from './search-report.ts';
import { median } from './stats.ts';

const here = dirname(fileURLToPath(import.meta.url));
const say = (s: string) => process.stdout.write(`${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Worker processes, one trial each: one per core of this machine. */
const WORKERS = Math.max(1, availableParallelism());
/** A history point further than this from the previous one is not compute (a PBT exploit's jump). */
const MAX_GAP = 50;

/** The bench's command-line options; each defaults as the full run. */
export interface SearchBenchOptions {
  /** Smoke test: 1 seed, 4 trials of 200 steps, one rung at 100. @default false */
  quick?: boolean;
  /** Sweep seeds 1..seeds. @default 3 (1 with quick) */
  seeds?: number;
  /**
   * N: trials of random search and TPE, PBT's population; B = N x steps. The full run's defaults (N 6, S 500)
   * fit its 4 methods x 3 seeds in about 45 minutes on a 2-core machine at the 0.13 s a step measured there.
   * @default 6 (4 with quick)
   */
  trials?: number;
  /** S: a trial's steps; a multiple of 100 (the evaluation interval). @default 500 (200 with quick) */
  steps?: number;
  /** Generated images per evaluation, the same for every method. @default 256 */
  evalSamples?: number;
  /** Methods to run, random first (its best is the others' target). @default all four */
  methods?: Method[];
}

/** Fills the defaults and checks the options; errors name the flag. */
export function compileSearchBench(o: SearchBenchOptions): BenchDesign {
  const quick = o.quick ?? false;
  const seeds = o.seeds ?? (quick ? 1 : 3);
  const trials = o.trials ?? (quick ? 4 : 6);
  const steps = o.steps ?? (quick ? 200 : 500);
  const evalSamples = o.evalSamples ?? 256;
  const methods = o.methods ?? [...METHODS];
  const whole = (flag: string, n: number, min: number) => {
    if (!Number.isInteger(n) || n < min)
      throw new Error(`--${flag}: expected an integer >= ${min}, got ${n}`);
  };
  whole('seeds', seeds, 1);
  whole('trials', trials, 2);
  whole('steps', steps, 200);
  whole('eval-samples', evalSamples, 64);
  const evalEvery = 100;
  if (steps % evalEvery !== 0) throw new Error(`--steps: must be a multiple of ${evalEvery}, got ${steps}`);
  for (const m of methods)
    if (!(METHODS as readonly string[]).includes(m))
      throw new Error(`--methods: unknown method '${m}'; known: ${METHODS.join(', ')}`);
  if (methods[0] !== 'random')
    throw new Error(
      '--methods: must start with random (its best FLD is what the others are measured against)',
    );
  const asha = { min_steps: evalEvery, eta: 3 };
  return {
    quick,
    seeds: Array.from({ length: seeds }, (_, i) => i + 1),
    methods,
    trials,
    steps,
    budget: trials * steps,
    evalEvery,
    evalSamples,
    workers: WORKERS,
    // Enough trials that ASHA cannot run out before B, were every one stopped at the first rung.
    asha: {
      ...asha,
      rungs: ashaRungs(asha, 0, steps),
      trials: Math.max(4 * trials, Math.ceil((trials * steps) / asha.min_steps)),
    },
    pbt: { interval: evalEvery },
    tpe: { startup_trials: Math.ceil(trials / 2) },
    maxGap: MAX_GAP,
  };
}

/** The search space and the fixed parameters of examples/dcgan-fashion.yaml. */
export const SEARCH_SPACE = {
  lr_g: { distribution: 'log_uniform', min: 1e-5, max: 3e-3 },
  lr_d: { distribution: 'log_uniform', min: 1e-5, max: 3e-3 },
  beta1: { distribution: 'uniform', min: 0, max: 0.9 },
  batch_size: { value: 32 },
  base_filters: { value: 32 },
  latent_dim: { value: 64 },
} as const;

/** The sweep spec of `method` at sweep seed `seed`: the same model, data, space and evaluations for all. */
export function searchSpec(
  d: BenchDesign,
  method: Method | 'calibrate',
  seed: number,
): Record<string, unknown> {
  const slots = d.workers;
  const base = {
    name: `bench-search-${method}-s${seed}`,
    model: 'dcgan',
    dataset: 'fashion-mnist',
    metric: { name: 'fld', goal: 'minimize' },
    seed,
    checkpoint: { every_steps: d.evalEvery },
    parameters: SEARCH_SPACE,
    health: { eval_every_steps: d.evalEvery, eval_samples: d.evalSamples },
  };
  const trials = { trials: d.trials, parallel: slots, steps: d.steps };
  switch (method) {
    case 'calibrate':
      return { ...base, method: 'random', budget: { trials: slots, parallel: slots, steps: d.evalEvery } };
    case 'random':
      return { ...base, method: 'random', budget: trials };
    case 'tpe':
      return { ...base, method: 'tpe', tpe: d.tpe, budget: trials };
    case 'asha':
      return {
        ...base,
        method: 'random',
        budget: { ...trials, trials: d.asha.trials },
        scheduler: { type: 'asha', min_steps: d.asha.min_steps, eta: d.asha.eta },
      };
    case 'pbt':
      return {
        ...base,
        method: 'random',
        budget: { ...trials, parallel: d.trials },
        scheduler: { type: 'pbt', interval: d.pbt.interval },
      };
  }
}

/** A trial as `GET /v1/trials/:id` returns it (qualityHistory once the API serves it). */
type TrialDetail = TrialRecord & {
  history: TrialMetrics[];
  events: TrialEvent[];
  qualityHistory?: QualityPoint[];
};
type SweepView = {
  id: string;
  state: string;
  trials: Pick<TrialRecord, 'id' | 'state' | 'step' | 'quality'>[];
  search?: unknown;
};

/** The coordinator's HTTP API. */
class Api {
  constructor(private readonly url: string) {}

  async call<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    const res = await fetch(`${this.url}${path}`, {
      method,
      ...(body === undefined
        ? {}
        : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status}: ${text}`);
    return JSON.parse(text) as T;
  }
}

/**
 * Runs one sweep to its end and returns its trials. A trial's evaluations are its `qualityHistory`; the
 * sweep's trials' latest evaluations are also polled each second, for a coordinator that serves none. With `cancelAt`, the sweep is cancelled
 * once its trials' steps add up to that many (ASHA's trials outnumber what B pays for). Throws when the
 * sweep has not ended after `deadlineS` seconds.
 */
async function runSweep(
  api: Api,
  spec: Record<string, unknown>,
  opts: { cancelAt?: number; deadlineS: number },
): Promise<Omit<MethodRun, 'method' | 'seed'>> {
  const { cancelAt, deadlineS } = opts;
  compileSweepSpec(spec); // a bad spec fails here, naming the field
  const t0 = Date.now();
  const { id } = await api.call<{ id: string }>('POST', '/v1/sweeps', spec);
  const polled = new Map<string, Map<string, QualityPoint>>();
  let cancelledAt: number | undefined;
  let lastNote = t0;
  let view: SweepView;
  for (;;) {
    view = await api.call<SweepView>('GET', `/v1/sweeps/${id}`);
    const now = Date.now();
    for (const t of view.trials) {
      if (!t.quality) continue;
      const seen = polled.get(t.id) ?? new Map<string, QualityPoint>();
      const key = `${t.quality.step}:${t.quality.fld}`;
      if (!seen.has(key)) seen.set(key, { ...t.quality, t: now });
      polled.set(t.id, seen);
    }
    const steps = view.trials.reduce((n, t) => n + t.step, 0);
    if (cancelAt !== undefined && cancelledAt === undefined && steps >= cancelAt) {
      cancelledAt = now;
      await api.call('POST', `/v1/sweeps/${id}/cancel`);
    }
    const trialsDone = view.trials.every((t) => TERMINAL_TRIAL_STATES.has(t.state));
    if (['completed', 'failed', 'cancelled'].includes(view.state) && trialsDone) break;
    if (now - t0 > deadlineS * 1000)
      throw new Error(`sweep ${id} (${spec.name}) still ${view.state} after ${deadlineS} s`);
    if (now - lastNote > 60_000) {
      lastNote = now;
      const running = view.trials.filter((t) => t.state === 'running').length;
      say(`  ${spec.name}: ${((now - t0) / 1000).toFixed(0)} s, trial steps ${steps}, ${running} running`);
    }
    await sleep(1000);
  }
  const wall = (Date.now() - t0) / 1000;
  const details = await Promise.all(
    view.trials.map((t) => api.call<TrialDetail>('GET', `/v1/trials/${t.id}`)),
  );
  return {
    sweepId: id,
    state: view.state,
    wall_s: wall,
    ...(cancelledAt ? { cancelled_after_s: (cancelledAt - t0) / 1000 } : {}),
    search: view.search,
    trials: details.map((t) => {
      const served = Array.isArray(t.qualityHistory) ? t.qualityHistory : undefined;
      const evaluations = served ?? [...(polled.get(t.id)?.values() ?? [])];
      return {
        id: t.id,
        index: t.index,
        state: t.state,
        reason: t.reason,
        params: t.params,
        startedAt: t.startedAt,
        endedAt: t.endedAt,
        evaluationSource: served ? 'qualityHistory' : 'polled',
        history: t.history.map((p) => ({ step: p.step, t: p.t })),
        starts: t.events.filter((e) => e.event === 'start').map((e) => ({ step: e.step, t: e.t })),
        evaluations: evaluations.map((q) => ({ step: q.step, fld: q.fld, t: q.t })).sort((a, b) => a.t - b.t),
      };
    }),
  };
}

/** Per-step, per-evaluation and per-trial overhead seconds, from a short sweep of one trial per worker. */
export interface Calibration {
  step_s: number;
  eval_s: number;
  trial_overhead_s: number;
  wall_s: number;
}

function calibrate(run: Omit<MethodRun, 'method' | 'seed'>, d: BenchDesign): Calibration {
  const plain: number[] = [];
  const atEval: number[] = [];
  const overheads: { trial: number; steps: number; evals: number }[] = [];
  for (const t of run.trials) {
    const h = t.history;
    for (let i = 1; i < h.length; i++) {
      const ds = h[i]!.step - h[i - 1]!.step;
      if (ds <= 0) continue;
      const seconds = (h[i]!.t - h[i - 1]!.t) / 1000;
      // The worker reports the evaluated step's point after the evaluation.
      if (h[i]!.step % d.evalEvery === 0) atEval.push(seconds);
      else plain.push(seconds / ds);
    }
    if (t.startedAt && t.endedAt && h.length > 0)
      overheads.push({ trial: (t.endedAt - t.startedAt) / 1000, steps: h.at(-1)!.step, evals: 1 });
  }
  if (plain.length === 0) throw new Error('calibration sweep reported no step history');
  const step = median(plain);
  const progressEvery = run.trials[0]!.history[1]!.step - run.trials[0]!.history[0]!.step;
  const evalS = atEval.length ? Math.max(0, median(atEval) - progressEvery * step) : 0;
  const overhead = overheads.length
    ? Math.max(0, median(overheads.map((o) => o.trial - o.steps * step - o.evals * evalS)))
    : 0;
  return { step_s: step, eval_s: evalS, trial_overhead_s: overhead, wall_s: run.wall_s };
}

/** Rough wall seconds of the whole run on `d.workers` workers, from the calibration's costs. */
export function estimateSeconds(d: BenchDesign, c: Calibration): number {
  const evals = d.budget / d.evalEvery;
  const starts: Record<Method, number> = {
    random: d.trials,
    tpe: d.trials,
    // Half of ASHA's trials stopped at the first rung is a guess; the budget caps the steps either way.
    asha: Math.min(d.asha.trials, 2 * d.trials),
    // Every PBT segment is a job of its own.
    pbt: d.trials * (d.steps / d.pbt.interval),
  };
  let total = 0;
  for (const m of d.methods)
    total += (d.budget * c.step_s + evals * c.eval_s + starts[m] * c.trial_overhead_s) / d.workers;
  return total * d.seeds.length;
}

/** Runs the bench; `argv` as after `bench/search.ts` on the command line. */
export async function runSearchBench(argv: string[]): Promise<void> {
  const { values: a } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      seeds: { type: 'string' },
      trials: { type: 'string' },
      steps: { type: 'string' },
      'eval-samples': { type: 'string' },
      methods: { type: 'string' },
    },
  });
  const num = (s: string | undefined) => (s === undefined ? undefined : Number(s));
  const d = compileSearchBench({
    quick: a.quick,
    seeds: num(a.seeds),
    trials: num(a.trials),
    steps: num(a.steps),
    evalSamples: num(a['eval-samples']),
    methods: a.methods?.split(',').map((m) => m.trim()) as Method[] | undefined,
  });
  const tag = d.quick ? 'search bench (QUICK: a smoke test, not a measurement)' : 'search bench';
  say(
    `${tag}: dcgan on fashion-mnist (batch 32, base_filters 32, latent 64); lr_g, lr_d log_uniform 1e-5..3e-3, beta1 uniform 0..0.9`,
  );
  say(
    `  B = ${d.trials} trials x ${d.steps} steps = ${d.budget} steps per sweep; FLD every ${d.evalEvery} steps on ${d.evalSamples} samples; seeds ${d.seeds.join(', ')}; ${d.workers} workers`,
  );
  say(
    `  asha: min_steps ${d.asha.min_steps}, eta ${d.asha.eta} (rungs ${d.asha.rungs.join(', ')}), ${d.asha.trials} trials, cancelled at B; pbt: population ${d.trials}, interval ${d.pbt.interval}; tpe: startup_trials ${d.tpe.startup_trials} (the default 10 would leave no trial to model at N = ${d.trials})`,
  );
  say(
    '  random, ASHA and PBT (method random) start trial i from the same configuration at a seed; TPE draws its own',
  );
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    GANTRY_PORT: '0',
    GANTRY_WORKER_CONCURRENCY: '1',
    GANTRY_PREFIX: `bench-search-${Date.now()}`,
  };
  delete env.REDIS_URL;
  delete env.S3_ENDPOINT;
  const stack = new LocalStack({
    workers: d.workers,
    persist: false,
    env,
    dataDir: join(here, 'results', 'search-stack'),
    log: createLogger('bench', 'silent'),
  });
  await stack.start();
  try {
    const api = new Api(stack.apiUrl);
    const until = Date.now() + 120_000;
    while ((await api.call<{ workers: unknown[] }>('GET', '/v1/workers')).workers.length < d.workers) {
      if (Date.now() > until) throw new Error(`fewer than ${d.workers} workers started within 120 s`);
      await sleep(250);
    }
    const calibration = calibrate(await runSweep(api, searchSpec(d, 'calibrate', 0), { deadlineS: 600 }), d);
    const estimate = estimateSeconds(d, calibration);
    say(
      `  calibration: ${(calibration.step_s * 1000).toFixed(0)} ms a step, ${calibration.eval_s.toFixed(1)} s an evaluation, ${calibration.trial_overhead_s.toFixed(1)} s a trial's start and end; estimate ${(estimate / 60).toFixed(0)} min for ${d.methods.length} methods x ${d.seeds.length} seeds`,
    );
    const runs: MethodRun[] = [];
    for (const seed of d.seeds) {
      for (const method of d.methods) {
        const run = await runSweep(api, searchSpec(d, method, seed), {
          ...(method === 'asha' ? { cancelAt: d.budget } : {}),
          // Generous: a sweep that takes 4x its share of the estimate (and 10 min at least) is stuck.
          deadlineS: Math.max(600, (4 * estimate) / (d.seeds.length * d.methods.length)),
        });
        say(`  seed ${seed} ${method}: sweep ${run.state} after ${run.wall_s.toFixed(0)} s`);
        runs.push({ method, seed, ...run });
      }
    }
    const report = reportSearch(d, runs, say);
    const file = join(here, 'results', d.quick ? 'search-quick.json' : 'search.json');
    await mkdir(dirname(file), { recursive: true });
    const results = {
      date: new Date().toISOString(),
      command: `node --import tsx bench/search.ts ${argv.join(' ')}`.trim(),
      quick: d.quick,
      machine: { cores: availableParallelism(), node: process.version },
      design: { ...d, space: SEARCH_SPACE },
      calibration,
      estimate_s: estimate,
      ...report,
      runs,
    };
    await writeFile(file, `${JSON.stringify(results, null, 1)}\n`);
    say(`wrote ${file}`);
  } finally {
    await stack.close();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await runSearchBench(process.argv.slice(2));
  process.exit(0);
}
