/**
 * Trainer start-up, fork to first step: forks `gantry-trainer` as the worker does (trial-runner's
 * forkTrainer, the real StartMessage over IPC, a data set version on disk laid out as the node's cache
 * keeps it), and times from the fork to the first step's start (the trainer's `ready`) and the first step
 * itself (its `progress`), median over interleaved repeats, with the phases the trainer marks on the way
 * (startup-marks.ts). The trainer is stopped after its first step, without a checkpoint: no object store
 * is touched (the quality classifiers are the committed ones).
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BUILTIN_DATASETS } from '../packages/coordinator/src/datasets/builtin/builtin-sets.ts';
import { packDataset } from '../packages/coordinator/src/datasets/pack.ts';
import { DEFAULT_HEALTH, MODEL_PARAMS, type TrialJob, trialId } from '../packages/shared/src/index.ts';
import type { ChildMessage, StartMessage, StartupTimes } from '../packages/worker/src/ipc.ts';
import { forkTrainer } from '../packages/worker/src/trial-runner.ts';
import { median } from './stats.ts';

interface Case {
  label: string;
  dataset: string;
  imageSize: number;
  channels: 1 | 3;
  params: Record<string, number>;
}

/** DCGAN 28 on Fashion-MNIST and DCGAN 64 RGB on emoji, as the examples train them. */
const CASES: Case[] = [
  {
    label: 'dcgan 28 fashion-mnist',
    dataset: 'fashion-mnist',
    imageSize: 28,
    channels: 1,
    params: { lr_g: 2e-4, lr_d: 2e-4, beta1: 0.5, batch_size: 32, base_filters: 32, latent_dim: 64 },
  },
  {
    label: 'dcgan 64 rgb emoji',
    dataset: 'emoji',
    imageSize: 64,
    channels: 3,
    params: { lr_g: 2e-4, lr_d: 1e-4, beta1: 0.5, batch_size: 32, base_filters: 16, latent_dim: 64 },
  },
];

/** The phases, in the order the trainer passes them: [name, the mark it ends at]. */
const PHASES: [string, string][] = [
  ['node boot', 'entry'],
  ['loader (tsx or compiled entry)', 'loader'],
  ['imports', 'imported'],
  ['start message', 'start-message'],
  ['wasm backend', 'wasm'],
  ['gemm module', 'gemm'],
  ['backend rest', 'backend'],
  ['data set read', 'data'],
  ['trainer build', 'trainer'],
  ['evaluator, resume', 'ready'],
];

interface Sample {
  forkToReadyMs: number;
  /** The trainer's CPU time up to `ready` (user + system): start-up's cost without other processes' share. */
  cpuToReadyMs: number;
  phasesCpu: Record<string, number>;
  firstStepMs: number;
  /** Fork to the process's own clock starting (performance.timeOrigin). */
  processUpMs: number;
  phases: Record<string, number>;
  entry: StartupTimes['entry'];
}

/** Writes a built-in set's packed version as the data set cache keeps it: manifest.json and shards/. */
async function writeVersion(root: string, name: string): Promise<{ dir: string; version: string }> {
  const set = BUILTIN_DATASETS.get(name)!;
  const { examples, meta } = await set.load({ fashionMnistDir: process.env.GANTRY_FASHION_MNIST_DIR });
  const { manifest, shards } = packDataset(examples, { name, ...meta });
  const dir = join(root, name, manifest.version);
  await mkdir(join(dir, 'shards'), { recursive: true });
  for (const [file, bytes] of shards) await writeFile(join(dir, 'shards', file), bytes);
  await writeFile(join(dir, 'manifest.json'), JSON.stringify(manifest));
  return { dir, version: manifest.version };
}

/** One fork: start, first step, stop. */
function once(c: Case, version: { dir: string; version: string }, i: number): Promise<Sample> {
  const sweepId = 'bench-startup';
  const job: TrialJob = {
    v: 2,
    sweepId,
    trialId: trialId(sweepId, i),
    index: i,
    model: 'dcgan',
    dataset: { name: c.dataset, version: version.version, image_size: c.imageSize, channels: c.channels },
    seed: 1 + i,
    steps: 1000,
    checkpointEvery: 1000,
    params: {
      ...Object.fromEntries(Object.entries(MODEL_PARAMS.dcgan).map(([n, d]) => [n, d.default])),
      ...c.params,
    },
    health: DEFAULT_HEALTH,
  };
  const start: StartMessage = {
    type: 'start',
    job,
    resume: [],
    writer: `bench-${i}`,
    // Never contacted: no resume, no warm start, committed classifiers, stopped before any checkpoint.
    store: {
      bucket: 'bench-startup',
      endpoint: 'http://127.0.0.1:9',
      region: 'us-east-1',
      forcePathStyle: true,
    },
    storeRetryMs: 0,
    backend: 'wasm',
    wasmGemm: true,
    datasetDir: version.dir,
    progressEvery: 1,
  };
  return new Promise((resolve, reject) => {
    const forkedAt = performance.timeOrigin + performance.now();
    const t0 = performance.now();
    const child = forkTrainer(process.env);
    let ready: { at: number; startup?: StartupTimes } | undefined;
    let sample: Sample | undefined;
    child.on('message', (m: ChildMessage) => {
      if (m.type === 'ready') ready = { at: performance.now(), ...(m.startup ? { startup: m.startup } : {}) };
      else if (m.type === 'progress' && ready && !sample) {
        const s = ready.startup;
        const phases: Record<string, number> = {};
        const phasesCpu: Record<string, number> = {};
        let prev = 0;
        let prevCpu = 0;
        for (const [name, mark] of PHASES) {
          const at = s?.marks[mark];
          if (at === undefined) continue;
          phases[name] = at - prev;
          prev = at;
          const cpu = s?.cpu[mark];
          if (cpu === undefined) continue;
          phasesCpu[name] = cpu - prevCpu;
          prevCpu = cpu;
        }
        sample = {
          forkToReadyMs: ready.at - t0,
          cpuToReadyMs: s?.cpu.ready ?? Number.NaN,
          phasesCpu,
          firstStepMs: performance.now() - ready.at,
          processUpMs: s ? s.timeOrigin - forkedAt : Number.NaN,
          phases,
          entry: s?.entry ?? 'tsx',
        };
        child.send({ type: 'stop', checkpoint: false });
      } else if (m.type === 'failed') reject(new Error(`trainer failed: ${m.message}`, { cause: m }));
    });
    child.once('exit', (code) =>
      sample ? resolve(sample) : reject(new Error(`trainer exited (${code}) before its first step`)),
    );
    child.send(start);
  });
}

/**
 * Median fork-to-first-step time (and first step) of each case over `repeats` interleaved forks, with the
 * start-up's phases; `say` gets one line per case and phase.
 */
export async function benchStartup(repeats: number, say: (s: string) => void): Promise<object> {
  const root = await mkdtemp(join(tmpdir(), 'gantry-bench-startup-'));
  try {
    const versions = new Map<string, { dir: string; version: string }>();
    for (const c of CASES)
      if (!versions.has(c.dataset)) versions.set(c.dataset, await writeVersion(root, c.dataset));
    // Each case's first fork apart: the node's first trainer of a version decodes its set (and the first
    // after a source changed builds the compiled entry), which later ones read.
    const first = new Map<string, Sample>();
    for (const c of CASES) first.set(c.label, await once(c, versions.get(c.dataset)!, 0));
    const samples = new Map<string, Sample[]>(CASES.map((c) => [c.label, []]));
    for (let r = 0; r < repeats; r++) {
      for (const c of CASES) samples.get(c.label)!.push(await once(c, versions.get(c.dataset)!, r + 1));
    }
    const out: Record<string, object> = {};
    for (const c of CASES) {
      const ss = samples.get(c.label)!;
      const phases: Record<string, number> = { 'fork to process up': median(ss.map((s) => s.processUpMs)) };
      const phasesCpu: Record<string, number> = {};
      for (const [name] of PHASES) {
        const xs = ss.map((s) => s.phases[name]).filter((x): x is number => x !== undefined);
        if (xs.length > 0) phases[name] = median(xs);
        const cs = ss.map((s) => s.phasesCpu[name]).filter((x): x is number => x !== undefined);
        if (cs.length > 0) phasesCpu[name] = median(cs);
      }
      const row = {
        entry: ss[0]!.entry,
        forkToFirstStepMs: median(ss.map((s) => s.forkToReadyMs)),
        firstForkToFirstStepMs: first.get(c.label)!.forkToReadyMs,
        cpuToFirstStepMs: median(ss.map((s) => s.cpuToReadyMs)),
        firstStepMs: median(ss.map((s) => s.firstStepMs)),
        allForkToFirstStepMs: ss.map((s) => Math.round(s.forkToReadyMs)),
        phasesMs: phases,
        phasesCpuMs: phasesCpu,
      };
      out[c.label] = row;
      say(
        `startup ${c.label}: fork -> first step ${row.forkToFirstStepMs.toFixed(0)} ms (median of ${repeats}, entry ${row.entry}; trainer CPU ${row.cpuToFirstStepMs.toFixed(0)} ms; the version's first fork ${row.firstForkToFirstStepMs.toFixed(0)} ms), first step ${row.firstStepMs.toFixed(0)} ms`,
      );
      const line = (xs: Record<string, number>) =>
        Object.entries(xs)
          .map(([k, v]) => `${k} ${v.toFixed(0)}`)
          .join(', ');
      say(`  wall ms: ${line(phases)}`);
      say(`  cpu ms:  ${line(phasesCpu)}`);
    }
    return out;
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

// `npx tsx bench/startup.ts [repeats]` runs it alone.
if (import.meta.url === `file://${process.argv[1]}`) {
  const repeats = Number(process.argv[2] ?? 5);
  console.log(JSON.stringify(await benchStartup(repeats, (s) => console.log(s)), null, 2));
}
