import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'vitest';

/** Analytic gradients of `f` w.r.t. every variable of `vars`, by variable name. */
export function analyticGrads(f: () => tf.Scalar, vars: tf.Variable[]): Map<string, Float32Array> {
  const { value, grads } = tf.variableGrads(f, vars);
  const out = new Map(Object.entries(grads).map(([k, g]) => [k, Float32Array.from(g.dataSync())]));
  tf.dispose([value, ...Object.values(grads)]);
  return out;
}

/** f at entry `i` of `v` moved by -h, 0 and +h; restores `v`. */
function probe(f: () => tf.Scalar, v: tf.Variable, i: number, h: number): [number, number, number] {
  const base = Float32Array.from(v.dataSync());
  const at = (delta: number) => {
    const x = Float32Array.from(base);
    x[i] = x[i]! + delta;
    tf.tidy(() => v.assign(tf.tensor(x, v.shape)));
    return tf.tidy(() => f().dataSync()[0]!);
  };
  const values: [number, number, number] = [at(-h), at(0), at(h)];
  tf.tidy(() => v.assign(tf.tensor(base, v.shape)));
  return values;
}

/**
 * Checks the analytic gradient `grad` of `f` w.r.t. `v` against central finite differences at its largest
 * entries (which rise clear of float32 noise): an entry whose forward and backward differences disagree
 * has a kink (ReLU, leaky ReLU) within h and is skipped; `want` smooth entries must agree within 5%.
 */
export function expectFiniteDifferences(
  f: () => tf.Scalar,
  v: tf.Variable,
  grad: Float32Array,
  label: string,
  { h = 1e-3, want = 2 }: { h?: number; want?: number } = {},
): void {
  const order = Array.from(grad.keys()).sort((a, b) => Math.abs(grad[b]!) - Math.abs(grad[a]!));
  let checked = 0;
  for (const i of order.slice(0, 8)) {
    const [down, mid, up] = probe(f, v, i, h);
    const forward = (up - mid) / h;
    const backward = (mid - down) / h;
    const central = (up - down) / (2 * h);
    const noise = (1e-6 * Math.max(1, Math.abs(mid))) / h;
    if (Math.abs(forward - backward) > 0.02 * Math.abs(central) + noise) continue;
    expect(
      Math.abs(grad[i]! - central),
      `${label}[${i}]: analytic ${grad[i]} vs finite difference ${central}`,
    ).toBeLessThanOrEqual(0.05 * Math.abs(central) + noise / 4);
    if (++checked === want) break;
  }
  expect(checked, `${label}: entries smooth enough to check`).toBeGreaterThan(0);
}

/** Expects two backends' gradients (by variable name) to agree within 1e-3 of each gradient's largest entry. */
export function expectSameGrads(a: Map<string, Float32Array>, b: Map<string, Float32Array>): void {
  for (const [name, x] of a) {
    const y = b.get(name);
    expect(y, name).toBeDefined();
    let scale = 0;
    for (const v of x) scale = Math.max(scale, Math.abs(v));
    expect(scale, `${name} has a gradient`).toBeGreaterThan(0);
    for (let i = 0; i < x.length; i++)
      expect(Math.abs(y![i]! - x[i]!), `${name}[${i}]: ${y![i]} vs ${x[i]}`).toBeLessThanOrEqual(
        1e-3 * scale,
      );
  }
}

/**
 * Expects the gradients of every (loss, variables) pair to be the same on `cpu` as on `wasm` (the project's
 * kernels against tfjs' reference backend); leaves the backend on wasm.
 */
export function expectBackendsAgree(pairs: readonly [() => tf.Scalar, tf.Variable[]][]): void {
  const on = (backend: 'wasm' | 'cpu') => {
    tf.setBackend(backend);
    return pairs.map(([f, vars]) => analyticGrads(f, vars));
  };
  const wasm = on('wasm');
  const cpu = on('cpu');
  tf.setBackend('wasm');
  cpu.forEach((c, i) => {
    expectSameGrads(c, wasm[i]!);
  });
}
