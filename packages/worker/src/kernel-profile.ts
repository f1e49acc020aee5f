/**
 * Where a piece of work spends its time, kernel by kernel: tf.profile's record, summed per kernel name.
 * Used by bench/profile-kernels.ts. On wasm a kernel's time is its wall time (the backend is synchronous).
 */
import * as tf from '@tensorflow/tfjs-core';

/** One kernel's share of `runs` runs of the work, per run. */
export interface KernelTime {
  name: string;
  ms: number;
  calls: number;
}

/**
 * `work` run `runs` times under tf.profile: wall milliseconds per run and each kernel's, widest first; with
 * `byShape`, each kernel and input shapes apart.
 */
export async function profileKernels(
  work: () => void,
  runs = 1,
  { byShape = false }: { byShape?: boolean } = {},
): Promise<{ wallMs: number; kernels: KernelTime[] }> {
  const t0 = performance.now();
  const info = await tf.profile(() => {
    for (let i = 0; i < runs; i++) work();
  });
  const wallMs = (performance.now() - t0) / runs;
  const byName = new Map<string, KernelTime>();
  for (const k of info.kernels) {
    const name = byShape
      ? `${k.name} ${k.inputShapes.map((s) => `[${s ?? ''}]`).join(' ')} -> [${k.outputShapes[0] ?? ''}]`
      : k.name;
    const e = byName.get(name) ?? { name, ms: 0, calls: 0 };
    e.ms += k.kernelTimeMs as number;
    e.calls += 1;
    byName.set(name, e);
  }
  const perRun = [...byName.values()].map((e) => ({ ...e, ms: e.ms / runs, calls: e.calls / runs }));
  return { wallMs, kernels: perRun.sort((a, b) => b.ms - a.ms) };
}
