import { createHash } from 'node:crypto';
import { CorruptCheckpointError } from './errors.ts';
import { objectKeys } from './keys.ts';
import type { ObjectStore } from './object-store.ts';

/**
 * Order of a checkpoint for a trial's pointer: health restarts first, then step (steps stay below 2^32).
 * The pointer only moves to a higher order, except when the coordinator sets it (a PBT exploit).
 */
export function checkpointOrder(ref: { step: number; restarts?: number }): number {
  return (ref.restarts ?? 0) * 2 ** 32 + ref.step;
}

/** What a checkpoint copy needs of a manifest (the worker's checkpoint-store.ts writes the whole format). */
interface ManifestHead {
  version: number;
  trialId: string;
  step: number;
  writer: string;
  createdAt: number;
  objects: { name: string; key: string; bytes: number; sha256: string }[];
  [other: string]: unknown;
}

/** Where a checkpoint comes from and where its copy goes. */
export interface CheckpointCopy {
  from: { sweepId: string; trialId: string; manifestKey: string };
  to: { sweepId: string; trialId: string; writer: string };
}

/**
 * Copies one committed checkpoint of a trial into another trial's folder as a checkpoint of its own (PBT's
 * exploit): every object byte for byte, verified against the source manifest's sizes and SHA-256, then a
 * manifest naming the target trial and `writer`, written last, so a copy cut short is never a checkpoint.
 * The same copy made twice writes the same objects (a coordinator that died half way makes it again).
 * Returns the new manifest's key and the step. @throws CorruptCheckpointError when the source does not verify
 */
export async function copyCheckpoint(
  store: ObjectStore,
  { from, to }: CheckpointCopy,
): Promise<{ manifestKey: string; step: number }> {
  const corrupt = (key: string, why: string) => new CorruptCheckpointError(from.trialId, key, why);
  const manifest = JSON.parse((await store.get(from.manifestKey)).toString('utf8')) as ManifestHead;
  if (manifest?.version !== 1 || manifest.trialId !== from.trialId || !Array.isArray(manifest.objects))
    throw corrupt(from.manifestKey, 'not a checkpoint manifest of this trial');
  const sourceDir = objectKeys.checkpointDir(from.sweepId, from.trialId, manifest.step, manifest.writer);
  if (from.manifestKey !== `${sourceDir}manifest.json`)
    throw corrupt(from.manifestKey, `manifest is not at its own step and writer (${sourceDir})`);
  const dir = objectKeys.checkpointDir(to.sweepId, to.trialId, manifest.step, to.writer);
  const objects: ManifestHead['objects'] = [];
  for (const o of manifest.objects) {
    if (o.key !== `${sourceDir}${o.name}.bin`) throw corrupt(from.manifestKey, `object ${o.name} outside it`);
    const bytes = await store.get(o.key);
    const sha = createHash('sha256').update(bytes).digest('hex');
    if (bytes.length !== o.bytes || sha !== o.sha256)
      throw corrupt(o.key, 'size or sha256 does not match the manifest');
    const key = `${dir}${o.name}.bin`;
    await store.put(key, bytes, 'application/octet-stream');
    objects.push({ ...o, key });
  }
  const manifestKey = `${dir}manifest.json`;
  const copy: ManifestHead = { ...manifest, trialId: to.trialId, writer: to.writer, objects };
  await store.put(manifestKey, JSON.stringify(copy), 'application/json');
  return { manifestKey, step: manifest.step };
}
