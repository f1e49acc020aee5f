/**
 * The Gantry side of a training row: one trainer in a child process of its own (bench/gantry-trainer-child.ts,
 * started with the trainer processes' node flags), so that its peak resident memory is the trainer's alone.
 * The child builds the trainer, takes its warm-up steps, then times `steps` steps on each `repeat()`; at the
 * end it reports its peak RSS. One request at a time over IPC.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TrialJob } from '../packages/shared/src/index.ts';
import { TRAINER_NODE_FLAGS } from '../packages/worker/src/trial-runner.ts';

const here = dirname(fileURLToPath(import.meta.url));

/** What the child is asked to build: the job, the built-in set it reads, its steps per repeat and warm-up. */
export interface ChildSetup {
  type: 'setup';
  job: TrialJob;
  dataset: string;
  steps: number;
  warmup: number;
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
