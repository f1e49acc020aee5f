import type { Rng } from '@gantry/shared';
import * as tf from '@tensorflow/tfjs-core';

/** A named float32 array with its shape: the unit of checkpoints. */
export interface NamedArray {
  name: string;
  shape: number[];
  data: Float32Array;
}

/**
 * The trainable variables of one network, created in a fixed order with stable names so that weights
 * and optimizer state can be saved and restored by name in any process.
 */
export class ParamStore {
  readonly vars: tf.Variable[] = [];
  private readonly byName = new Map<string, tf.Variable>();

  constructor(readonly scope: string) {}

  /** Creates a variable initialised from `init` (drawn from the trial's Rng, so runs are reproducible). */
  add(name: string, shape: number[], init: (size: number) => Float32Array): tf.Variable {
    const full = `${this.scope}/${name}`;
    if (this.byName.has(full)) throw new Error(`duplicate parameter ${full}`);
    const size = shape.reduce((a, b) => a * b, 1);
    const initial = tf.tensor(init(size), shape, 'float32');
    const v = tf.variable(initial, true, full);
    // The variable holds its own reference to the data: without this the initial tensor would outlive it.
    initial.dispose();
    this.vars.push(v);
    this.byName.set(full, v);
    return v;
  }

  get(name: string): tf.Variable {
    const v = this.byName.get(`${this.scope}/${name}`);
    if (!v) throw new Error(`no parameter ${this.scope}/${name}`);
    return v;
  }

  /** Number of scalar parameters. */
  size(): number {
    return this.vars.reduce((n, v) => n + v.size, 0);
  }

  export(): NamedArray[] {
    return this.vars.map((v) => ({ name: v.name, shape: [...v.shape], data: v.dataSync() as Float32Array }));
  }

  /** Assigns every variable from `arrays`; names and shapes must match exactly. */
  import(arrays: readonly NamedArray[]): void {
    const given = new Map(arrays.map((a) => [a.name, a]));
    for (const v of this.vars) {
      const a = given.get(v.name);
      if (!a) throw new Error(`checkpoint lacks ${v.name}`);
      if (a.shape.join('x') !== v.shape.join('x')) {
        throw new Error(
          `checkpoint shape of ${v.name} is ${a.shape.join('x')}, expected ${v.shape.join('x')}`,
        );
      }
      tf.tidy(() => v.assign(tf.tensor(a.data, a.shape, 'float32')));
    }
    if (given.size !== this.vars.length)
      throw new Error(`checkpoint has ${given.size} arrays for ${this.scope}, expected ${this.vars.length}`);
  }

  /**
   * Assigns the variables that `arrays` holds under the same local name (the part after the scope, so
   * another store's arrays fit), leaving the others as they are: how a grown network takes over the layers
   * of the previous stage. Returns the local names left untouched. Arrays of names this store lacks are
   * ignored; a shared name with another shape is an error.
   */
  importMatching(arrays: readonly NamedArray[]): string[] {
    const local = (name: string) => name.slice(name.indexOf('/') + 1);
    const given = new Map(arrays.map((a) => [local(a.name), a]));
    const fresh: string[] = [];
    for (const v of this.vars) {
      const a = given.get(local(v.name));
      if (!a) {
        fresh.push(local(v.name));
        continue;
      }
      if (a.shape.join('x') !== v.shape.join('x')) {
        throw new Error(
          `shape of ${a.name} is ${a.shape.join('x')}, expected ${v.shape.join('x')} for ${v.name}`,
        );
      }
      tf.tidy(() => v.assign(tf.tensor(a.data, a.shape, 'float32')));
    }
    return fresh;
  }

  /** A store of new, non-trainable variables with this one's local names and values under `scope`. */
  copy(scope: string): ParamStore {
    const out = new ParamStore(scope);
    for (const v of this.vars) {
      const full = `${scope}/${v.name.slice(this.scope.length + 1)}`;
      const c = tf.variable(v, false, full);
      out.vars.push(c);
      out.byName.set(full, c);
    }
    return out;
  }

  dispose(): void {
    for (const v of this.vars) v.dispose();
    this.vars.length = 0;
    this.byName.clear();
  }
}

/** Initialisers drawing from the trial's Rng. */
export const init = {
  normal:
    (rng: Rng, std: number, mean = 0) =>
    (n: number) => {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = mean + std * rng.normal();
      return out;
    },
  zeros: () => (n: number) => new Float32Array(n),
  ones: () => (n: number) => new Float32Array(n).fill(1),
};
