/**
 * The PyTorch side of a training row: a script of bench/ (the contract in bench/torch_bench.py) run by the
 * system interpreter with `--serve`, warmed up once, one repeat per line written to its stdin; or, for a
 * script without `--serve`, one process per repeat (each with its own warm-up).
 */
import { type ChildProcessWithoutNullStreams, execFile, spawn, spawnSync } from 'node:child_process';
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
  /** Trainable parameters of its G and D together (null until a one-process-per-repeat script's first run). */
  readonly params: number | null;
  /** Images per second over one repeat's steps. */
  repeat(): Promise<number>;
  /** Ends the script: its peak resident set in MB. */
  end(): Promise<number>;
}

/** How a row's script is run. */
export interface PytorchScript {
  script: string;
  args: Record<string, string | number>;
  /** The script takes `--serve` (torch_bench.py's loop). @default true */
  serve?: boolean;
}

/** Starts `script` with its options and the loop's, and waits for its warm-up. */
export async function startPytorch(
  opts: PytorchScript & { batch: number; steps: number; warmup: number },
): Promise<PytorchRun> {
  const all = { ...opts.args, batch: opts.batch, steps: opts.steps, warmup: opts.warmup, threads: 1 };
  const argv = [join(here, opts.script), ...Object.entries(all).flatMap(([k, v]) => [`--${k}`, String(v)])];
  return opts.serve === false ? oneProcessPerRepeat(opts.script, argv) : served(opts.script, argv);
}

/** One process per repeat: its last line's images/s, params and peak RSS (the largest of the runs). */
function oneProcessPerRepeat(script: string, argv: string[]): PytorchRun {
  let params: number | null = null;
  let peak = 0;
  return {
    get params() {
      return params;
    },
    repeat: () =>
      new Promise((resolve, reject) => {
        execFile(PYTHON, argv, { maxBuffer: 1 << 24 }, (err, stdout, stderr) => {
          if (err) return reject(new PytorchRunError(`${script} failed: ${stderr.trim().slice(-600)}`));
          try {
            const last = JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, number>;
            if (typeof last.images_per_sec !== 'number') throw new Error('no images_per_sec');
            params = last.params ?? null;
            peak = Math.max(peak, last.peak_rss_mb ?? 0);
            resolve(last.images_per_sec);
          } catch (e) {
            reject(new PytorchRunError(`${script} broke the contract: ${(e as Error).message}`));
          }
        });
      }),
    end: async () => peak,
  };
}

/** The script with `--serve`: warmed up once, a repeat per line written to its stdin. */
async function served(script: string, argv: string[]): Promise<PytorchRun> {
  const child: ChildProcessWithoutNullStreams = spawn(PYTHON, [...argv, '--serve'], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => {
    stderr = (stderr + b.toString()).slice(-2000);
  });
  const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const fail = (what: string) => new PytorchRunError(`${script} ${what}: ${stderr.trim().slice(-600)}`);
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
        const code = await exited;
        if (code !== 0) throw fail(`exited (${code})`);
        if (typeof last.peak_rss_mb !== 'number') throw fail('sent no peak_rss_mb');
        return last.peak_rss_mb;
      },
    };
  } catch (e) {
    child.kill();
    throw e;
  }
}
