/**
 * The Gantry side of a training row: one trainer in a child process of its own (bench/gantry-trainer-child.ts,
 * started with the trainer processes' node flags), so that its peak resident memory is the trainer's alone.
 * The child reads the data set version from disk as a trainer does (written once per set by the bench:
 * {@link writeDatasetVersion}), builds the trainer, takes its warm-up steps, then times `steps` steps on each
 * `repeat()`; at the end it reports its peak RSS. One request at a time over IPC.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BUILTIN_DATASETS } from '../packages/coordinator/src/datasets/builtin/builtin-sets.ts';
import { packDataset } from '../packages/coordinator/src/datasets/pack.ts';
import type { TrialJob } from '../packages/shared/src/index.ts';
import { TRAINER_NODE_FLAGS } from '../packages/worker/src/trial-runner.ts';

const here = dirname(fileURLToPath(import.meta.url));

/** What the child is asked to build: the job, the set's version on disk, its steps per repeat and warm-up. */
export interface ChildSetup {
  type: 'setup';
  /** Its dataset's version is the one in `dataDir`. */
  job: TrialJob;
  /** The version's folder (manifest.json and shards/), as a node's data set cache keeps it. */
  dataDir: string;
  steps: number;
  warmup: number;
}

/** A built-in set packed once and written as a version folder, for the trainers' children to read. */
export interface DatasetVersion {
  dir: string;
  version: string;
}

let versionsRoot: Promise<string> | undefined;
const versions = new Map<string, Promise<DatasetVersion>>();

/** Built-in set `name` packed (as the coordinator does) and written under a temp folder, once per bench. */
export function writeDatasetVersion(name: string): Promise<DatasetVersion> {
  let v = versions.get(name);
  if (!v) {
    versionsRoot ??= mkdtemp(join(tmpdir(), 'gantry-bench-data-'));
    v = (async () => {
      const set = BUILTIN_DATASETS.get(name);
      if (!set) throw new Error(`no built-in data set '${name}'`);
      const { examples, meta } = await set.load({ fashionMnistDir: process.env.GANTRY_FASHION_MNIST_DIR });
      const { manifest, shards } = packDataset(examples, { name, ...meta });
      const dir = join(await versionsRoot!, name, manifest.version);
      await mkdir(join(dir, 'shards'), { recursive: true });
      for (const [file, bytes] of shards) await writeFile(join(dir, 'shards', file), bytes);
      await writeFile(join(dir, 'manifest.json'), JSON.stringify(manifest));
      return { dir, version: manifest.version };
    })();
    versions.set(name, v);
  }
  return v;
}

/** Removes the versions {@link writeDatasetVersion} wrote. */
export async function removeDatasetVersions(): Promise<void> {
  if (versionsRoot) await rm(await versionsRoot, { recursive: true, force: true });
  versionsRoot = undefined;
  versions.clear();
}
export type ChildRequest = ChildSetup | { type: 'repeat' } | { type: 'end' };
export type ChildReply =
  | {
      type: 'ready';
      backend: string;
      device: string;
      flopsPerStep: number;
      /** Trainable parameters of G and D together. */
      params: number;
    }
  | { type: 'repeat'; seconds: number }
  | { type: 'end'; peakRssMb: number }
  | { type: 'error'; message: string };

/** A warmed-up trainer in its child process. */
export interface GantryTrainer {
  backend: string;
  device: string;
  flopsPerStep: number;
  params: number;
  /** Seconds of `steps` timed steps. */
  repeat(): Promise<number>;
  /** Ends the child; its peak resident set in MB. */
  end(): Promise<number>;
}

/** Thrown when the trainer's child process fails or exits before answering. */
export class GantryChildError extends Error {
  readonly code = 'BENCH_GANTRY_CHILD';
  override readonly name = 'GantryChildError';
}

/** Sends `req` and waits for the child's answer. */
function ask(child: ChildProcess, req: ChildRequest): Promise<ChildReply> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: ChildReply) => {
      cleanup();
      if (m.type === 'error') reject(new GantryChildError(`trainer child: ${m.message}`));
      else resolve(m);
    };
    const onExit = (code: number | null, signal: string | null) => {
      cleanup();
      reject(new GantryChildError(`trainer child exited (${code ?? signal}) during '${req.type}'`));
    };
    const cleanup = () => {
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    child.on('message', onMessage);
    child.on('exit', onExit);
    child.send(req);
  });
}

/** Forks the child, builds the trainer and takes its warm-up steps. */
export async function startGantryTrainer(setup: Omit<ChildSetup, 'type'>): Promise<GantryTrainer> {
  const child = fork(join(here, 'gantry-trainer-child.ts'), [], {
    execArgv: [...TRAINER_NODE_FLAGS, '--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  try {
    const ready = await ask(child, { type: 'setup', ...setup });
    if (ready.type !== 'ready') throw new GantryChildError(`trainer child answered '${ready.type}'`);
    return {
      ...ready,
      async repeat() {
        const r = await ask(child, { type: 'repeat' });
        if (r.type !== 'repeat') throw new GantryChildError(`trainer child answered '${r.type}'`);
        return r.seconds;
      },
      async end() {
        const r = await ask(child, { type: 'end' });
        // The child exits when the channel closes (after its answer has arrived).
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.disconnect();
        await exited;
        if (r.type !== 'end') throw new GantryChildError(`trainer child answered '${r.type}'`);
        return r.peakRssMb;
      },
    };
  } catch (e) {
    child.kill();
    throw e;
  }
}
