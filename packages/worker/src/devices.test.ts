import { describe, expect, it } from 'vitest';
import { DevicePool, defaultConcurrency, detectGpus } from './devices.ts';

const noSmi = () => {
  throw new Error('nvidia-smi: not found');
};

describe('detectGpus', () => {
  it('takes CUDA_VISIBLE_DEVICES as given, in order', () => {
    expect(detectGpus({ CUDA_VISIBLE_DEVICES: '3, 1' }, noSmi)).toEqual(['3', '1']);
  });

  it('treats CUDA_VISIBLE_DEVICES=-1 as no GPU', () => {
    expect(detectGpus({ CUDA_VISIBLE_DEVICES: '-1' }, noSmi)).toEqual([]);
  });

  it('counts the GPUs nvidia-smi lists when CUDA_VISIBLE_DEVICES is unset', () => {
    const smi = () =>
      'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-aa)\nGPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-bb)\n';
    expect(detectGpus({}, smi)).toEqual(['0', '1']);
  });

  it('finds none without nvidia-smi', () => {
    expect(detectGpus({}, noSmi)).toEqual([]);
  });
});

describe('defaultConcurrency', () => {
  it('runs one trial per GPU on a GPU backend and one per core otherwise', () => {
    expect(defaultConcurrency(true, ['0', '1', '2'], 16)).toBe(3);
    expect(defaultConcurrency(false, [], 16)).toBe(16);
    expect(defaultConcurrency(true, [], 16)).toBe(1);
  });
});

describe('DevicePool', () => {
  it('gives each running trial a different GPU and takes it back', () => {
    const pool = new DevicePool(['0', '1']);
    const a = pool.acquire();
    const b = pool.acquire();
    expect(new Set([a, b])).toEqual(new Set(['0', '1']));
    expect(pool.acquire()).toBeUndefined();
    pool.release(a);
    expect(pool.acquire()).toBe(a);
  });
});
