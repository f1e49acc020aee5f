import { spawn } from 'node:child_process';
import { join } from 'node:path';

/** The `gantry` CLI of this checkout. */
export const GANTRY_BIN = join(
  import.meta.dirname,
  '..',
  '..',
  'packages',
  'coordinator',
  'bin',
  'gantry.mjs',
);

/** What a finished CLI run printed and its exit code. */
export interface CliRun {
  code: number | null;
  out: string;
  err: string;
}

/** Runs `gantry <args>` with `env` (GANTRY_API_URL and friends) and collects its output. */
export function runGantry(env: NodeJS.ProcessEnv, args: readonly string[]): Promise<CliRun> {
  const child = spawn(process.execPath, [GANTRY_BIN, ...args], { env });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d;
  });
  child.stderr.on('data', (d: Buffer) => {
    err += d;
  });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out, err }));
  });
}
