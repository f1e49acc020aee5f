import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { wasmFromWat } from './module-cache.ts';

const WAT = '(module (func (export "two") (result i32) i32.const 2))';
const features = { simd: true };
const dirs: string[] = [];
const cacheDir = async () => {
  const d = await mkdtemp(join(tmpdir(), 'gantry-wasm-cache-'));
  dirs.push(d);
  return d;
};
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

const run = (bytes: Uint8Array, fn: string): number => {
  const { WebAssembly: W } = globalThis as unknown as {
    WebAssembly: {
      Instance: new (m: object) => { exports: Record<string, () => number> };
      Module: new (b: Uint8Array) => object;
    };
  };
  return new W.Instance(new W.Module(bytes)).exports[fn]!();
};

describe('the assembled wasm cache', () => {
  it('assembles a module once and reads the kept binary back afterwards', async () => {
    const dir = await cacheDir();
    const first = await wasmFromWat('t', WAT, features, dir);
    expect(run(first, 'two')).toBe(2);
    const [file] = await readdir(dir);
    expect(Buffer.from(await readFile(join(dir, file!))).equals(Buffer.from(first))).toBe(true);
    // The kept file is what a later call returns (here a module of another text written in its place).
    const other = await wasmFromWat('u', WAT.replace('i32.const 2', 'i32.const 3'), features, dir);
    await writeFile(join(dir, file!), other);
    expect(run(await wasmFromWat('t', WAT, features, dir), 'two')).toBe(3);
  });

  it('assembles a changed text or other features anew instead of reading an older binary', async () => {
    const dir = await cacheDir();
    await wasmFromWat('t', WAT, features, dir);
    const changed = await wasmFromWat('t', WAT.replace('i32.const 2', 'i32.const 5'), features, dir);
    expect(run(changed, 'two')).toBe(5);
    await wasmFromWat('t', WAT, { simd: false }, dir);
    expect((await readdir(dir)).filter((f) => f.endsWith('.wasm'))).toHaveLength(3);
  });

  it('still returns the binary when the cache folder cannot be written', async () => {
    const dir = await cacheDir();
    const file = join(dir, 'not-a-folder');
    await writeFile(file, '');
    expect(run(await wasmFromWat('t', WAT, features, file), 'two')).toBe(2);
  });
});
