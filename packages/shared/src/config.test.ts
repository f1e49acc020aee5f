import { describe, expect, it } from 'vitest';
import { loadConfig } from './config.ts';
import { ConfigError } from './errors.ts';

describe('loadConfig', () => {
  it('has the documented defaults', () => {
    const c = loadConfig({});
    expect(c.redisUrl).toBe('redis://127.0.0.1:6379');
    expect(c.api.port).toBe(8080);
    expect(c.worker.lockMs).toBe(30_000);
    expect(c.worker.wasmGemm).toBe(true);
    expect(c.worker.backend).toBeUndefined();
  });

  it("turns Gantry's wasm matrix product off with GANTRY_WASM_GEMM=off", () => {
    expect(loadConfig({ GANTRY_WASM_GEMM: 'off' }).worker.wasmGemm).toBe(false);
  });

  it('names every bad variable', () => {
    let error: unknown;
    try {
      loadConfig({ GANTRY_WASM_GEMM: 'maybe', GANTRY_PORT: '99999' });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect(String((error as Error).message)).toMatch(/GANTRY_WASM_GEMM/);
    expect(String((error as Error).message)).toMatch(/GANTRY_PORT/);
  });
});
