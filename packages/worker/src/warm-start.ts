import { CorruptCheckpointError, GantryError, type JobInitFrom, type ObjectStore } from '@gantry/shared';
import { CheckpointStore } from './checkpoint-store.ts';
import type { Trainer, TrainerState } from './families/family.ts';
import type { NamedArray } from './models/param-store.ts';

/**
 * Thrown when a warm start's source checkpoint (a job's `initFrom`) is gone, damaged or no longer fits the
 * trial's networks: retrying cannot bring it back, so the attempt fails for good (`code`
 * INIT_FROM_UNAVAILABLE), naming the checkpoint's key.
 */
export class WarmStartError extends GantryError {
  constructor(init: JobInitFrom, why: string, cause?: unknown) {
    super(
      'INIT_FROM_UNAVAILABLE',
      500,
      `init_from: the checkpoint of trial ${init.trialId} at step ${init.step} (${init.manifestKey}) ${why}`,
      { cause, context: { trialId: init.trialId, key: init.manifestKey } },
    );
  }
}

/**
 * The state a warm-started trainer begins with: its own fresh state (step 0, its own Rng, fresh optimizers,
 * no restarts) with the weights of the networks in `nets` taken from `source`. G brings what goes with
 * it: its moving average where the trainer keeps one (the source's, or else G itself: an average starts
 * at the weights it averages) and its batch-norm statistics where both keep them. The other network keeps
 * its fresh initialisation.
 */
export function warmState(
  fresh: TrainerState,
  source: TrainerState,
  nets: readonly ('g' | 'd')[],
): TrainerState {
  const out: TrainerState = { ...fresh };
  if (nets.includes('g')) {
    out.g = source.g;
    if (fresh.ema) out.ema = source.ema ?? renamedLike(fresh.ema, source.g);
    if (fresh.stats && source.stats) out.stats = source.stats;
  }
  if (nets.includes('d')) out.d = source.d;
  return out;
}

/** `arrays` under the names of `like`, matched by the part after the network's scope (`g/fc/w` -> `g_ema/fc/w`). */
function renamedLike(like: readonly NamedArray[], arrays: readonly NamedArray[]): NamedArray[] {
  const local = (name: string) => name.slice(name.indexOf('/') + 1);
  const byLocal = new Map(arrays.map((a) => [local(a.name), a]));
  return like.map((l) => {
    const a = byLocal.get(local(l.name));
    return a ? { ...a, name: l.name } : l;
  });
}

/**
 * Reads a warm start's source checkpoint from the store, verified as a resume is (the manifest is that
 * trial's, every object matches its size and hash), and loads the named networks into the fresh `trainer`
 * (its step, Rng and optimizers stay its own). A store that cannot be reached is thrown as is (the attempt
 * is retried). @throws WarmStartError when the checkpoint is gone, damaged or does not fit
 */
export async function warmStart(trainer: Trainer, store: ObjectStore, init: JobInitFrom): Promise<void> {
  let source: TrainerState;
  try {
    source = await new CheckpointStore(store, init.sweepId, init.trialId).read(init.manifestKey);
  } catch (err) {
    if (!(err instanceof CorruptCheckpointError)) throw err;
    const why = err.missing ? 'is no longer in the object store' : 'cannot be used';
    throw new WarmStartError(init, `${why}: ${err.message}`, err);
  }
  try {
    trainer.importState(warmState(trainer.exportState(), source, init.nets));
  } catch (err) {
    // The sweep's submit checked the shapes: a family whose networks changed since can get here.
    throw new WarmStartError(init, `does not fit this trial's networks: ${(err as Error).message}`, err);
  }
}
