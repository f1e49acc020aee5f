/**
 * The PyTorch side of a training row: a script of bench/ (the contract in bench/torch_bench.py) run with
 * `--serve` by the system interpreter, warmed up once, one repeat per line written to its stdin.
 */
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
/** The interpreter Debian's python3-torch installs into (what `node scripts/setup.mjs --bench` checks). */
export const PYTHON = '/usr/bin/python3';

/** PyTorch's version, or why the PyTorch side is skipped. */
export type PytorchProbe = { version: string } | { skipped: string };

export function pytorchVersion(): PytorchProbe {
  const probe = spawnSync(PYTHON, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' });
  if (probe.error)
    return {
      skipped: `${PYTHON} cannot run (${probe.error.message}); node scripts/setup.mjs --bench installs python3-torch`,
    };
  if (probe.status !== 0) {
    const why = probe.stderr.trim().split('\n').at(-1) ?? `exit ${probe.status}`;
    return {
      skipped: `'import torch' fails in ${PYTHON}: ${why} (node scripts/setup.mjs --bench installs python3-torch)`,
    };
  }
  return { version: probe.stdout.trim() };
}

/** Why a row's script cannot run, or undefined when it is there. */
export function missingScript(script: string): string | undefined {
  return existsSync(join(here, script)) ? undefined : `bench/${script} missing`;
}

/** Thrown when a PyTorch script fails or breaks the contract; carries the end of its stderr. */
export class PytorchRunError extends Error {
  readonly code = 'BENCH_PYTORCH_RUN';
  override readonly name = 'PytorchRunError';
}

/** A warmed-up PyTorch script. */
export interface PytorchRun {
  /** Trainable parameters of its G and D together. */
  params: number;
  /** Images per second over one repeat's steps. */
  repeat(): Promise<number>;
  /** Ends the script: its peak resident set in MB. */
  end(): Promise<number>;
}

/** Starts `script` with its options and the loop's, and waits for its warm-up. */
export async function startPytorch(opts: {
  script: string;
  args: Record<string, string | number>;
  batch: number;
  steps: number;
  warmup: number;
}): Promise<PytorchRun> {
  const all = { ...opts.args, batch: opts.batch, steps: opts.steps, warmup: opts.warmup, threads: 1 };
  const argv = [
    join(here, opts.script),
    ...Object.entries(all).flatMap(([k, v]) => [`--${k}`, String(v)]),
    '--serve',
  ];
  const child: ChildProcessWithoutNullStreams = spawn(PYTHON, argv, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => {
    stderr = (stderr + b.toString()).slice(-2000);
  });
  const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const fail = (what: string) => new PytorchRunError(`${opts.script} ${what}: ${stderr.trim().slice(-600)}`);
  const next = async (): Promise<Record<string, unknown>> => {
    const { value, done } = await lines.next();
    if (done) throw fail(`exited (${await exited})`);
    try {
      return JSON.parse(value) as Record<string, unknown>;
    } catch {
      throw fail(`printed '${value.slice(0, 200)}', not JSON`);
    }
  };
  try {
    const ready = await next();
    if (ready.ready !== true || typeof ready.params !== 'number') throw fail('sent no ready line');
    return {
      params: ready.params,
      async repeat() {
        child.stdin.write('\n');
        const r = await next();
        if (typeof r.images_per_sec !== 'number') throw fail('sent no images_per_sec');
        return r.images_per_sec;
      },
      async end() {
        child.stdin.end();
        const last = await next();
        if ((await exited) !== 0) throw fail(`exited (${await exited})`);
        if (typeof last.peak_rss_mb !== 'number') throw fail('sent no peak_rss_mb');
        return last.peak_rss_mb;
      },
    };
  } catch (e) {
    child.kill();
    throw e;
  }
}
