/**
 * `npm run bench`'s command line: which blocks run, and each training row's steps per repeat and warm-up.
 * Options -> defaults -> compiled: {@link compileBenchArgs} is the one place that reads them.
 */
import { parseArgs } from 'node:util';

/** The training rows in the order they run, each a key of bench/results/latest.json. */
export const TRAINING_ROWS = [
  'dcgan_28',
  'dcgan_64',
  'wgan_gp',
  'progan_32',
  'progan_64',
  'srgan_adversarial',
  'srgan_pretrain',
  'pix2pix',
  'transgan',
] as const;
export type TrainingRowKey = (typeof TRAINING_ROWS)[number];

/**
 * Per row: its block (the name of `--skip-<block>` and of `--only`), its steps option and default, its
 * warm-up option and default (untimed steps, once per process on each side). Defaults keep the whole
 * default `npm run bench` under ~20 minutes on a 2-core machine: a repeat is a few seconds a side, one
 * step where a step is long (PyTorch: ~27 s for DCGAN 64x64, ~30 s for TransGAN).
 */
const ROW_OPTIONS: Record<
  TrainingRowKey,
  { block: string; steps: [string, number]; warmup: [string, number] }
> = {
  dcgan_28: { block: '28', steps: ['steps', 8], warmup: ['warmup-28', 3] },
  dcgan_64: { block: '64', steps: ['steps-64', 1], warmup: ['warmup-64', 1] },
  wgan_gp: { block: 'wgan-gp', steps: ['steps-wgan-gp', 1], warmup: ['warmup-wgan-gp', 1] },
  progan_32: { block: 'progan-32', steps: ['steps-progan-32', 2], warmup: ['warmup-progan-32', 1] },
  progan_64: { block: 'progan-64', steps: ['steps-progan-64', 1], warmup: ['warmup-progan-64', 1] },
  srgan_adversarial: { block: 'srgan', steps: ['steps-srgan', 1], warmup: ['warmup-srgan', 1] },
  srgan_pretrain: {
    block: 'srgan',
    steps: ['steps-srgan-pretrain', 2],
    warmup: ['warmup-srgan-pretrain', 1],
  },
  pix2pix: { block: 'pix2pix', steps: ['steps-pix2pix', 2], warmup: ['warmup-pix2pix', 1] },
  transgan: { block: 'transgan', steps: ['steps-transgan', 1], warmup: ['warmup-transgan', 1] },
};

/** Every block `--skip-<block>` and `--only` name, training rows first. */
export const BLOCKS = [
  ...new Set(Object.values(ROW_OPTIONS).map((r) => r.block)),
  'push',
  'sweep',
  'startup',
] as const;

/** A training row as compiled: its steps per repeat and warm-up steps. */
export interface CompiledRow {
  key: TrainingRowKey;
  steps: number;
  warmup: number;
}

/** What the bench runs, every option filled and checked. */
export interface BenchOptions {
  repeats: number;
  /** The training rows to run, in order. */
  rows: CompiledRow[];
  push: boolean;
  sweep: { steps: number; repeats: number } | null;
  startup: boolean;
}

/** Thrown for a command line the bench cannot run: a bad number, an unknown option or block. */
export class BenchArgsError extends Error {
  readonly code = 'BENCH_ARGS';
  override readonly name = 'BenchArgsError';
}

/** `argv` (without node and the script) as bench options; throws {@link BenchArgsError}. */
export function compileBenchArgs(argv: string[]): BenchOptions {
  const options: Record<string, { type: 'string' | 'boolean'; default?: string | boolean }> = {
    repeats: { type: 'string', default: '5' },
    'sweep-steps': { type: 'string', default: '200' },
    'sweep-repeats': { type: 'string', default: '2' },
    only: { type: 'string' },
  };
  for (const r of Object.values(ROW_OPTIONS)) {
    options[r.steps[0]] = { type: 'string', default: String(r.steps[1]) };
    options[r.warmup[0]] = { type: 'string', default: String(r.warmup[1]) };
  }
  for (const b of BLOCKS) options[`skip-${b}`] = { type: 'boolean', default: false };
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: argv, options, strict: true, allowPositionals: false }));
  } catch (e) {
    throw new BenchArgsError((e as Error).message);
  }
  const int = (name: string, min: number): number => {
    const n = Number(values[name]);
    if (!Number.isInteger(n) || n < min)
      throw new BenchArgsError(`--${name}: expected an integer >= ${min}, got ${values[name]}`);
    return n;
  };
  const only = typeof values.only === 'string' ? values.only.split(',').map((s) => s.trim()) : null;
  for (const b of only ?? [])
    if (!(BLOCKS as readonly string[]).includes(b))
      throw new BenchArgsError(`--only: no block '${b}'; blocks: ${BLOCKS.join(', ')}`);
  const runs = (block: string) => !values[`skip-${block}`] && (only === null || only.includes(block));
  const rows = TRAINING_ROWS.filter((key) => runs(ROW_OPTIONS[key].block)).map((key) => ({
    key,
    steps: int(ROW_OPTIONS[key].steps[0], 1),
    warmup: int(ROW_OPTIONS[key].warmup[0], 0),
  }));
  return {
    repeats: int('repeats', 1),
    rows,
    push: runs('push'),
    sweep: runs('sweep') ? { steps: int('sweep-steps', 1), repeats: int('sweep-repeats', 1) } : null,
    startup: runs('startup'),
  };
}
