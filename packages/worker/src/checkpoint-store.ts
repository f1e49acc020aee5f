import { createHash } from 'node:crypto';
import { CorruptCheckpointError, type ObjectStore, objectKeys } from '@gantry/shared';
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
  /** `ema`: the moving average of G's weights, for models that keep one. */
  objects: { name: 'g' | 'd' | 'opt_g' | 'opt_d' | 'ema'; key: string; bytes: number; sha256: string }[];
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
  async write(state: TrainerState, writer: string): Promise<string> {
    const dir = objectKeys.checkpointDir(this.sweepId, this.trialId, state.step, writer);
    const blobs: Partial<Record<CheckpointManifest['objects'][number]['name'], Uint8Array>> = {
      g: packArrays(state.g),
      d: packArrays(state.d),
      opt_g: packArrays(state.optG.arrays),
      opt_d: packArrays(state.optD.arrays),
    };
    if (state.ema) blobs.ema = packArrays(state.ema);
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
      objects,
    };
    const manifestKey = `${dir}manifest.json`;
    await this.store.put(manifestKey, JSON.stringify(manifest), 'application/json');
    return manifestKey;
  }

  /**
   * Loads a checkpoint by its manifest key and verifies every object's size and hash.
   * @throws CorruptCheckpointError when anything is missing or does not match.
   */
  async read(manifestKey: string): Promise<TrainerState> {
    let manifest: CheckpointManifest;
    try {
      manifest = JSON.parse((await this.store.get(manifestKey)).toString('utf8')) as CheckpointManifest;
    } catch (err) {
      throw new CorruptCheckpointError(
        this.trialId,
        manifestKey,
        `manifest unreadable: ${(err as Error).message}`,
      );
    }
    if (manifest.version !== 1 || manifest.trialId !== this.trialId) {
      throw new CorruptCheckpointError(this.trialId, manifestKey, 'manifest is for another trial or version');
    }
    const arrays: Partial<
      Record<CheckpointManifest['objects'][number]['name'], ReturnType<typeof unpackArrays>>
    > = {};
    for (const o of manifest.objects) {
      let bytes: Buffer;
      try {
        bytes = await this.store.get(o.key);
      } catch (err) {
        throw new CorruptCheckpointError(this.trialId, o.key, `object unreadable: ${(err as Error).message}`);
      }
      if (bytes.length !== o.bytes || sha256(bytes) !== o.sha256) {
        throw new CorruptCheckpointError(this.trialId, o.key, 'size or sha256 does not match the manifest');
      }
      arrays[o.name] = unpackArrays(bytes);
    }
    const { g, d, opt_g, opt_d, ema } = arrays;
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
      ...(ema ? { ema } : {}),
    };
  }
}
