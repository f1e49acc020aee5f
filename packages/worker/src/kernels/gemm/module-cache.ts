/**
 * Gantry's wasm modules are written as WAT text (wat.ts) and assembled with wabt. Assembling takes ~0.1 s
 * of every trainer's start-up (wabt's own module loaded and run), so the binary is kept on disk under the
 * SHA-256 of what it is built from - the text, the features, wabt's version - and read back by later
 * processes; a text that changed gets a binary of its own. Writes go through a rename (readers see whole
 * files) and a failed write (read-only or full disk) only costs the next process the assembly again.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

/** Where the binaries are kept unless told otherwise (never committed). */
export const WASM_CACHE_DIR = fileURLToPath(
  new URL('../../../node_modules/.cache/gantry-wasm/', import.meta.url),
);

/** wabt's feature switches that a module needs (`simd`, `relaxed_simd`, ...). */
export type WatFeatures = Record<string, boolean>;

const wabtVersion = (): string =>
  (createRequire(import.meta.url)('wabt/package.json') as { version: string }).version;

/** The binary of WAT `wat`, from `cacheDir` when it was assembled before, else assembled (and kept there). */
export async function wasmFromWat(
  name: string,
  wat: string,
  features: WatFeatures,
  cacheDir = WASM_CACHE_DIR,
): Promise<Uint8Array> {
  const key = createHash('sha256')
    .update(JSON.stringify({ wabt: wabtVersion(), features }))
    .update(wat)
    .digest('hex')
    .slice(0, 32);
  const file = join(cacheDir, `${name}-${key}.wasm`);
  const cached = await readFile(file).catch(() => undefined);
  if (cached && cached.length > 8) return new Uint8Array(cached.buffer, cached.byteOffset, cached.length);
  const binary = await assemble(name, wat, features);
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    await mkdir(cacheDir, { recursive: true });
    await writeFile(tmp, binary);
    await rename(tmp, file);
  } catch {
    await rm(tmp, { force: true }).catch(() => {});
  }
  return binary;
}

async function assemble(name: string, wat: string, features: WatFeatures): Promise<Uint8Array> {
  const { default: wabtInit } = await import('wabt');
  const wabt = await wabtInit();
  const parsed = wabt.parseWat(`${name}.wat`, wat, features);
  try {
    return Uint8Array.from(parsed.toBinary({}).buffer);
  } finally {
    parsed.destroy();
  }
}

/** The WebAssembly JS API (Node's typings here do not declare it). */
interface WasmApi {
  Memory: abstract new (...args: never[]) => object;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
}
const WASM = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

/** WAT `wat` compiled into a module (its binary assembled once per machine: wasmFromWat). */
export async function moduleFromWat(name: string, wat: string, features: WatFeatures): Promise<object> {
  return new WASM.Module(await wasmFromWat(name, wat, features));
}

/**
 * The exports of an instance of `module` over `backend`'s wasm memory (its `env.memory` import), so that it
 * reads and writes tensors in place; undefined where the backend exposes no memory.
 */
export function instanceOnBackend(module: object, backend: BackendWasm): Record<string, unknown> | undefined {
  const memory = (backend.wasm as unknown as { asm?: { memory?: unknown } }).asm?.memory;
  if (!(memory instanceof WASM.Memory)) return undefined;
  return new WASM.Instance(module, { env: { memory } }).exports;
}
