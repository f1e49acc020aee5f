import { setTimeout as sleep } from 'node:timers/promises';
import type { ObjectStore, PinnedDataset, RedisClient } from '@gantry/shared';
import { committedReads, qualityPrefix } from './quality-source.ts';

export interface QualityTurnOptions {
  redis: RedisClient;
  /** The lease's Redis key (RedisKeys.qualityLease). */
  key: string;
  /** Who holds it (the attempt), for the lease's value. */
  holder: string;
  store: ObjectStore;
  dataset: PinnedDataset;
  /** Committed classifiers. @default CLASSIFIER_DIR */
  assetsDir?: string;
  /** Stop waiting (the attempt is being stopped): the trainer then finds or trains the classifier itself. */
  signal?: AbortSignal;
  /** @default 1000 */
  pollMs?: number;
  /** The lease lapses this long after its holder stops renewing it (a dead worker's). @default 60000 */
  leaseMs?: number;
}

/** A held lease: renewed until released. */
export interface QualityLease {
  release(): Promise<void>;
}

// Deletes the lease only while this holder has it.
const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;
const RENEW = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end`;

/**
 * Waits for this attempt's turn to set up its quality evaluator, so that a sweep's parallel trials on a new
 * set do not each train the same classifier: returns undefined at once when a classifier for these images
 * exists (committed, or kept beside the version); otherwise a lease when this attempt is the one to train
 * it (its trainer trains and stores it; release the lease once the trainer is ready), or undefined once
 * another attempt has stored it. A holder that dies stops renewing, and the lease passes on.
 */
export async function qualityTurn(opts: QualityTurnOptions): Promise<QualityLease | undefined> {
  const d = opts.dataset;
  if (await committedReads(d, opts.assetsDir)) return undefined;
  const stored = () => opts.store.exists(`${qualityPrefix(d)}${d.name}.json`);
  const leaseMs = opts.leaseMs ?? 60_000;
  for (;;) {
    if (await stored()) return undefined;
    if ((await opts.redis.set(opts.key, opts.holder, 'PX', leaseMs, 'NX')) === 'OK') {
      const renew = setInterval(
        () => void opts.redis.eval(RENEW, 1, opts.key, opts.holder, leaseMs).catch(() => {}),
        leaseMs / 3,
      );
      let released: Promise<void> | undefined;
      return {
        release: () => {
          released ??= (async () => {
            clearInterval(renew);
            await opts.redis.eval(RELEASE, 1, opts.key, opts.holder).catch(() => {});
          })();
          return released;
        },
      };
    }
    if (opts.signal?.aborted) return undefined;
    await sleep(opts.pollMs ?? 1000);
  }
}
