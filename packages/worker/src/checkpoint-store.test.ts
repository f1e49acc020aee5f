import { CorruptCheckpointError, ObjectStore, objectKeys, Rng } from '@gantry/shared';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { freshStore, s3Config } from '../../../test/support/infra.ts';
import { type CheckpointManifest, CheckpointStore } from './checkpoint-store.ts';
import type { TrainerState } from './families/family.ts';
import type { NamedArray } from './models/param-store.ts';

const SWEEP = 'sw-ckpt';
const TRIAL = 'sw-ckpt-t000';

function array(rng: Rng, name: string, shape: number[]): NamedArray {
  const n = shape.reduce((a, b) => a * b, 1);
  return { name, shape, data: Float32Array.from({ length: n }, () => rng.normal()) };
}

/** A small but complete TrainerState with random contents (the store does not care where it came from). */
function state(step: number, seed: number): TrainerState {
  const rng = new Rng(seed);
  rng.normal(); // leaves a cached deviate, so the rng state has all six numbers in use
  return {
    step,
    rng: rng.getState(),
    g: [array(rng, 'g/fc/w', [4, 6]), array(rng, 'g/bn0/gamma', [6]), array(rng, 'g/empty', [0])],
    d: [array(rng, 'd/c1/w', [2, 2, 1, 3]), array(rng, 'd/fc/b', [1])],
    optG: { t: step, arrays: [array(rng, 'g/fc/w/adam_m', [4, 6]), array(rng, 'g/fc/w/adam_v', [4, 6])] },
    optD: {
      t: step - 1,
      arrays: [array(rng, 'd/c1/w/adam_m', [2, 2, 1, 3]), array(rng, 'd/c1/w/adam_v', [2, 2, 1, 3])],
    },
  };
}

let store: ObjectStore;
let checkpoints: CheckpointStore;

beforeEach(async () => {
  store = await freshStore();
  checkpoints = new CheckpointStore(store, SWEEP, TRIAL);
});

afterEach(async () => {
  await store.close();
});

async function expectCorrupt(p: Promise<unknown>, trialId = TRIAL): Promise<CorruptCheckpointError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CorruptCheckpointError);
  expect((err as CorruptCheckpointError).code).toBe('CORRUPT_CHECKPOINT');
  expect((err as CorruptCheckpointError).context.trialId).toBe(trialId);
  return err as CorruptCheckpointError;
}

describe('CheckpointStore', () => {
  it('reads back exactly the TrainerState it wrote', async () => {
    const s = state(120, 1);
    const key = await checkpoints.write(s, 'worker-a');
    expect(await checkpoints.read(key)).toEqual(s);
    // With health restarts and learning-rate multipliers, which a resumed trial must keep.
    const restarted = { ...state(130, 2), health: { restarts: 2, lrScale: { g: 10, d: 0.025 } } };
    expect(await checkpoints.read(await checkpoints.write(restarted, 'worker-a'))).toEqual(restarted);
    // With a stage, G's moving average and running batch-norm statistics (progan; srgan and pix2pix).
    const rng = new Rng(3);
    const extras = {
      ...state(140, 3),
      stage: 1,
      ema: [array(rng, 'g_ema/fc/w', [4, 6])],
      stats: [array(rng, 'g_bn/bn0/mean', [6]), array(rng, 'g_bn/bn0/var', [6])],
    };
    expect(await checkpoints.read(await checkpoints.write(extras, 'worker-a'))).toEqual(extras);
  });

  it('writes the objects under checkpoints/<step>/<writer>/ and the manifest after all of them', async () => {
    const events: string[] = [];
    const put = store.put.bind(store);
    store.put = async (key, body, contentType) => {
      events.push(`start ${key}`);
      await put(key, body, contentType);
      events.push(`end ${key}`);
    };
    const s = state(40, 2);
    const key = await checkpoints.write(s, 'worker-a');

    const dir = objectKeys.checkpointDir(SWEEP, TRIAL, 40, 'worker-a');
    expect(dir).toBe(`sweeps/${SWEEP}/trials/${TRIAL}/checkpoints/40/worker-a/`);
    expect(key).toBe(`${dir}manifest.json`);
    expect(await store.list(`sweeps/${SWEEP}/`)).toEqual(
      ['d.bin', 'g.bin', 'manifest.json', 'opt_d.bin', 'opt_g.bin'].map((f) => `${dir}${f}`),
    );
    // The manifest upload starts only once every object upload has finished.
    const manifestStart = events.indexOf(`start ${key}`);
    expect(manifestStart).toBe(events.length - 2);
    expect(events.slice(0, manifestStart).filter((e) => e.startsWith('end'))).toHaveLength(4);

    const manifest = await store.getJson<CheckpointManifest>(key);
    expect(manifest).toMatchObject({
      version: 1,
      trialId: TRIAL,
      step: 40,
      writer: 'worker-a',
      rng: s.rng,
      optimizerSteps: { g: 40, d: 39 },
    });
    expect(manifest.objects.map((o) => o.name)).toEqual(['d', 'g', 'opt_d', 'opt_g']);
    for (const o of manifest.objects) expect((await store.get(o.key)).length).toBe(o.bytes);
  });

  it('rejects a checkpoint whose object was overwritten with other bytes', async () => {
    const key = await checkpoints.write(state(10, 3), 'worker-a');
    const gKey = key.replace('manifest.json', 'g.bin');
    const bytes = await store.get(gKey);
    // Same length, one bit flipped in the data: only the hash can tell.
    bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 1;
    await store.put(gKey, bytes);
    const err = await expectCorrupt(checkpoints.read(key));
    expect(err.context.key).toBe(gKey);
    // Different length.
    await store.put(gKey, new Uint8Array(16));
    await expectCorrupt(checkpoints.read(key));
  });

  it('rejects a checkpoint with a missing object', async () => {
    const key = await checkpoints.write(state(10, 4), 'worker-a');
    const dKey = key.replace('manifest.json', 'd.bin');
    await store.deleteMany([dKey]);
    const err = await expectCorrupt(checkpoints.read(key));
    expect(err.context.key).toBe(dKey);
  });

  it('treats a checkpoint without a manifest as corrupt', async () => {
    const key = await checkpoints.write(state(10, 5), 'worker-a');
    await store.deleteMany([key]);
    const err = await expectCorrupt(checkpoints.read(key));
    expect(err.context.key).toBe(key);
    await store.put(key, '{"version": 1, "trialId": ');
    await expectCorrupt(checkpoints.read(key));
  });

  it("refuses another trial's manifest", async () => {
    const key = await checkpoints.write(state(10, 6), 'worker-a');
    await expectCorrupt(new CheckpointStore(store, SWEEP, 'sw-ckpt-t001').read(key), 'sw-ckpt-t001');
  });

  it('keeps two writers of the same step apart', async () => {
    const a = state(50, 7);
    const b = state(50, 8);
    const keyA = await checkpoints.write(a, 'worker-a');
    const keyB = await checkpoints.write(b, 'worker-b');
    expect(keyA).not.toBe(keyB);
    expect(await checkpoints.read(keyA)).toEqual(a);
    expect(await checkpoints.read(keyB)).toEqual(b);
    expect(await store.list(`sweeps/${SWEEP}/trials/${TRIAL}/checkpoints/50/`)).toHaveLength(10);
  });

  it('keeps the run tail, for the summary of an attempt that resumes at the last step', async () => {
    const s = state(200, 9);
    const tail = {
      stats: [
        [0.5, 1.5, 0.6, 0.4],
        [0.4, 1.6, 0.7, 0.3],
      ] as [number, number, number, number][],
      imagesPerSec: 812.5,
    };
    expect(await checkpoints.read(await checkpoints.write(s, 'worker-a', tail))).toEqual({ ...s, tail });
  });

  it("keeps DiffAugment's adaptive p exactly, and refuses a malformed one", async () => {
    const s: TrainerState = {
      ...state(40, 12),
      augment: { p: 0.1 + 0.2, signSum: 3.25, images: 24, updates: 3, rt: 0.6875 },
    };
    const key = await checkpoints.write(s, 'worker-a');
    expect(await checkpoints.read(key)).toEqual(s);
    for (const bad of [{ ...s.augment, p: 1.5 }, { ...s.augment, images: -1 }, { p: 0.5 }]) {
      const m = await store.getJson<CheckpointManifest>(key);
      await store.put(key, JSON.stringify({ ...m, augment: bad }));
      expect((await expectCorrupt(checkpoints.read(key))).message).toMatch(/malformed augment state/);
    }
  });

  it('refuses manifests that lie: objects outside the checkpoint, another step, sizes that do not hold', async () => {
    const key = await checkpoints.write(state(30, 10), 'worker-a');
    const manifest = await store.getJson<CheckpointManifest>(key);
    const lie = async (edit: (m: CheckpointManifest) => void, expected: RegExp) => {
      const m = structuredClone(manifest);
      edit(m);
      await store.put(key, JSON.stringify(m));
      const err = await expectCorrupt(checkpoints.read(key));
      expect(err.message).toMatch(expected);
    };
    // Another trial's (or any) object passed off as this checkpoint's.
    const other = await new CheckpointStore(store, SWEEP, 'sw-ckpt-t009').write(state(30, 11), 'w');
    await lie((m) => {
      m.objects[0]!.key = other.replace('manifest.json', 'd.bin');
    }, /points outside the checkpoint/);
    await lie((m) => {
      m.objects[1]!.key = `${key.replace('manifest.json', '')}../../10/worker-a/g.bin`;
    }, /points outside the checkpoint/);
    await lie((m) => {
      m.step = 31;
    }, /says step 31, its directory step 30/);
    await lie((m) => {
      m.objects[0]!.bytes = 2 ** 60;
    }, /no valid size/);
    await lie((m) => {
      m.objects.push({ ...m.objects[0]! });
    }, /repeated object/);
    await lie((m) => {
      m.objects[0]!.sha256 = '0'.repeat(64);
    }, /sha256 does not match/);
    // A pointer that is not a manifest of this trial.
    await expectCorrupt(
      checkpoints.read(`sweeps/${SWEEP}/trials/${TRIAL}/../t1/checkpoints/1/w/manifest.json`),
    );
    await expectCorrupt(checkpoints.read('datasets/x/manifest.json'));
  });

  it('does not take a store it cannot reach for a corrupt checkpoint', async () => {
    const key = await checkpoints.write(state(10, 12), 'worker-a');
    const unreachable = new ObjectStore({ ...s3Config(store.bucket), endpoint: 'http://127.0.0.1:9' });
    const err = await new CheckpointStore(unreachable, SWEEP, TRIAL).read(key).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    await unreachable.close();
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(CorruptCheckpointError);
    expect(String(err)).toMatch(/ECONNREFUSED/);
  });
});
