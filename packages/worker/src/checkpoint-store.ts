import { createHash } from 'node:crypto';
import { CorruptCheckpointError, ObjectNotFoundError, type ObjectStore, objectKeys } from '@gantry/shared';
import type { AugmentState } from './augment/diff-augment.ts';
import type { TrainerHealthState, TrainerState } from './families/family.ts';
import { packArrays, unpackArrays } from './tensor-pack.ts';

/** Written last; a checkpoint without it does not exist. */
export interface CheckpointManifest {
  version: 1;
  trialId: string;
  step: number;
  writer: string;
  createdAt: number;
  rng: number[];
  optimizerSteps: { g: number; d: number };
  /** Health restarts and learning-rate multipliers (absent before health handling existed). */
  health?: TrainerHealthState;
  /** Staged models: the stage the weights belong to. */
  stage?: number;
  /** DiffAugment with ADA: the adaptive p and its interval under way (absent without ADA). */
  augment?: AugmentState;
  /** The run's recent step statistics, for the summary of an attempt that resumes at the last step. */
  tail?: RunTail;
  /**
   * `ema`: the moving average of G's weights, for models that keep one; `stats`: running batch-norm
   * statistics, for models that evaluate with them.
   */
  objects: {
    name: 'g' | 'd' | 'opt_g' | 'opt_d' | 'ema' | 'stats';
    key: string;
    bytes: number;
    sha256: string;
  }[];
}

/**
 * What the summary of a run is computed from besides the weights: the losses of its last steps (the last
 * tenth of the run, newest last) and the last throughput. Kept in checkpoints so that an attempt resuming
 * at the final step reports the same summary as the one that died before reporting it.
 */
export interface RunTail {
  /** [d_loss, g_loss, d_real, d_fake] per step. */
  stats: [number, number, number, number][];
  imagesPerSec: number;
}

/** A checkpoint as read back: the trainer's state and, when it was saved, the run's tail. */
export type Checkpoint = TrainerState & { tail?: RunTail };

const OBJECT_NAMES = new Set(['g', 'd', 'opt_g', 'opt_d', 'ema', 'stats']);

/** An ADA state as a manifest holds it: p in [0, 1], finite sums, whole counts. */
function isAugmentState(a: unknown): a is AugmentState {
  const s = a as Partial<AugmentState> | null;
  const count = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
  return (
    typeof s === 'object' &&
    s !== null &&
    typeof s.p === 'number' &&
    s.p >= 0 &&
    s.p <= 1 &&
    Number.isFinite(s.signSum) &&
    count(s.images) &&
    count(s.updates) &&
    (s.rt === undefined || typeof s.rt === 'number')
  );
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/**
 * Reads and writes trial checkpoints in the object store. Every object is immutable: a checkpoint of step
 * S by writer W lives under `checkpoints/S/W/`, so two workers holding the same trial never overwrite each
 * other; which checkpoint is current is decided elsewhere (the fenced pointer in Redis).
 */
export class CheckpointStore {
  constructor(
    private readonly store: ObjectStore,
    private readonly sweepId: string,
    private readonly trialId: string,
  ) {}

  /** Uploads the state's objects, then the manifest; returns the manifest's key. */
  async write(state: TrainerState, writer: string, tail?: RunTail): Promise<string> {
    const dir = objectKeys.checkpointDir(this.sweepId, this.trialId, state.step, writer);
    const blobs: Partial<Record<CheckpointManifest['objects'][number]['name'], Uint8Array>> = {
      g: packArrays(state.g),
      d: packArrays(state.d),
      opt_g: packArrays(state.optG.arrays),
      opt_d: packArrays(state.optD.arrays),
    };
    if (state.ema) blobs.ema = packArrays(state.ema);
    if (state.stats) blobs.stats = packArrays(state.stats);
    const objects: CheckpointManifest['objects'] = [];
    await Promise.all(
      (Object.keys(blobs) as (keyof typeof blobs)[]).map(async (name) => {
        const key = `${dir}${name}.bin`;
        const blob = blobs[name]!;
        await this.store.put(key, blob, 'application/octet-stream');
        objects.push({ name, key, bytes: blob.length, sha256: sha256(blob) });
      }),
    );
    objects.sort((a, b) => a.name.localeCompare(b.name));
    const manifest: CheckpointManifest = {
      version: 1,
      trialId: this.trialId,
      step: state.step,
      writer,
      createdAt: Date.now(),
      rng: state.rng,
      optimizerSteps: { g: state.optG.t, d: state.optD.t },
      ...(state.health ? { health: state.health } : {}),
      ...(state.stage !== undefined ? { stage: state.stage } : {}),
      ...(state.augment ? { augment: state.augment } : {}),
      ...(tail ? { tail } : {}),
      objects,
    };
    const manifestKey = `${dir}manifest.json`;
    await this.store.put(manifestKey, JSON.stringify(manifest), 'application/json');
    return manifestKey;
  }

  /**
   * Loads a checkpoint by its manifest key and verifies it: the manifest names this trial and the step of
   * its directory, every object lies in the manifest's directory and matches its recorded size and hash.
   * A store that cannot be reached is not corruption: that error is thrown as is (the attempt is retried).
   * @throws CorruptCheckpointError when anything is missing, malformed or does not match.
   */
  async read(manifestKey: string): Promise<Checkpoint> {
    const corrupt = (key: string, why: string) => new CorruptCheckpointError(this.trialId, key, why);
    const dirPrefix = `${objectKeys.trialRoot(this.sweepId, this.trialId)}checkpoints/`;
    // <prefix><step>/<writer>/manifest.json, the writer a name (not . or ..).
    const m = manifestKey.startsWith(dirPrefix)
      ? /^(\d+)\/([A-Za-z0-9_-][A-Za-z0-9_.-]*)\/manifest\.json$/.exec(manifestKey.slice(dirPrefix.length))
      : null;
    if (!m) throw corrupt(manifestKey, `not a manifest of this trial's checkpoints (under ${dirPrefix})`);
    const dir = `${dirPrefix}${m[1]}/${m[2]}/`;
    const raw = await this.fetch(manifestKey, 'manifest');
    let manifest: CheckpointManifest;
    try {
      manifest = JSON.parse(raw.toString('utf8')) as CheckpointManifest;
    } catch (err) {
      throw corrupt(manifestKey, `manifest is not JSON: ${(err as Error).message}`);
    }
    if (manifest?.version !== 1 || manifest.trialId !== this.trialId) {
      throw corrupt(manifestKey, 'manifest is for another trial or version');
    }
    if (manifest.step !== Number(m[1])) {
      throw corrupt(manifestKey, `manifest says step ${manifest.step}, its directory step ${m[1]}`);
    }
    const isInt = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
    if (
      !Array.isArray(manifest.rng) ||
      !manifest.rng.every((x) => typeof x === 'number') ||
      !isInt(manifest.optimizerSteps?.g) ||
      !isInt(manifest.optimizerSteps?.d)
    ) {
      throw corrupt(manifestKey, 'manifest has no valid rng state or optimizer steps');
    }
    if (
      manifest.tail !== undefined &&
      !(
        Array.isArray(manifest.tail.stats) &&
        manifest.tail.stats.every((r) => Array.isArray(r) && r.length === 4) &&
        typeof manifest.tail.imagesPerSec === 'number'
      )
    ) {
      throw corrupt(manifestKey, 'manifest has a malformed run tail');
    }
    if (manifest.augment !== undefined && !isAugmentState(manifest.augment))
      throw corrupt(manifestKey, 'manifest has a malformed augment state');
    if (!Array.isArray(manifest.objects)) throw corrupt(manifestKey, 'manifest lists no objects');
    const seen = new Set<string>();
    for (const o of manifest.objects) {
      if (!OBJECT_NAMES.has(o?.name) || seen.has(o.name))
        throw corrupt(manifestKey, `unknown or repeated object ${JSON.stringify(o?.name)}`);
      seen.add(o.name);
      if (o.key !== `${dir}${o.name}.bin`)
        throw corrupt(
          manifestKey,
          `object ${o.name} points outside the checkpoint (${JSON.stringify(o.key)})`,
        );
      if (!Number.isSafeInteger(o.bytes) || o.bytes < 0 || typeof o.sha256 !== 'string')
        throw corrupt(manifestKey, `object ${o.name} has no valid size and sha256`);
    }
    const arrays: Partial<
      Record<CheckpointManifest['objects'][number]['name'], ReturnType<typeof unpackArrays>>
    > = {};
    for (const o of manifest.objects) {
      const bytes = await this.fetch(o.key, 'object');
      if (bytes.length !== o.bytes || sha256(bytes) !== o.sha256) {
        throw corrupt(
          o.key,
          `size or sha256 does not match the manifest (${bytes.length} bytes, manifest says ${o.bytes})`,
        );
      }
      try {
        arrays[o.name] = unpackArrays(bytes);
      } catch (err) {
        throw corrupt(o.key, `not a tensor pack: ${(err as Error).message}`);
      }
    }
    const { g, d, opt_g, opt_d, ema, stats } = arrays;
    if (!g || !d || !opt_g || !opt_d)
      throw new CorruptCheckpointError(this.trialId, manifestKey, 'objects missing');
    return {
      step: manifest.step,
      rng: manifest.rng,
      g,
      d,
      optG: { t: manifest.optimizerSteps.g, arrays: opt_g },
      optD: { t: manifest.optimizerSteps.d, arrays: opt_d },
      ...(manifest.health ? { health: manifest.health } : {}),
      ...(manifest.stage !== undefined ? { stage: manifest.stage } : {}),
      ...(manifest.augment ? { augment: manifest.augment } : {}),
      ...(ema ? { ema } : {}),
      ...(stats ? { stats } : {}),
      ...(manifest.tail ? { tail: manifest.tail } : {}),
    };
  }

  /** An object's bytes; a missing one means the checkpoint is corrupt, any other failure is thrown as is. */
  private async fetch(key: string, what: 'manifest' | 'object'): Promise<Buffer> {
    try {
      return await this.store.get(key);
    } catch (err) {
      if (err instanceof ObjectNotFoundError)
        throw new CorruptCheckpointError(this.trialId, key, `${what} missing`, { missing: true });
      throw err;
    }
  }
}
