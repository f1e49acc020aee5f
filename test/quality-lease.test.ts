import {
  createRedis,
  type ObjectStore,
  type PinnedDataset,
  type RedisClient,
  redisKeys,
} from '@gantry/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { qualityTurn } from '../packages/worker/src/quality/quality-lease.ts';
import { qualityPrefix } from '../packages/worker/src/quality/quality-source.ts';
import { freshStore, testConfig, uniqueId } from './support/infra.ts';

const set = (name: string): PinnedDataset => ({
  name,
  version: '0123456789abcdef',
  image_size: 16,
  channels: 3,
});

describe('one attempt trains a missing quality classifier, the others wait for it', () => {
  let store: ObjectStore;
  let redis: RedisClient;
  const keys = redisKeys(uniqueId('q'));
  beforeAll(async () => {
    store = await freshStore();
    redis = createRedis(testConfig());
  });
  afterAll(async () => {
    await store.close();
    await redis.quit();
  });
  const turn = (d: PinnedDataset, holder: string, leaseMs?: number) =>
    qualityTurn({
      redis,
      key: keys.qualityLease(d.name, '16x16x3'),
      holder,
      store,
      dataset: d,
      pollMs: 50,
      leaseMs,
    });

  it('gives the lease to one attempt; the others go on once it has stored the classifier', async () => {
    const d = set(uniqueId('s'));
    const first = await turn(d, 'a');
    expect(first).toBeDefined();
    let waitedOut = false;
    const others = Promise.all([turn(d, 'b'), turn(d, 'c')]).then((r) => {
      waitedOut = true;
      return r;
    });
    // They wait while the holder trains (nothing stored yet): a state, not a time, is what ends the wait.
    await new Promise((r) => setTimeout(r, 300));
    expect(waitedOut).toBe(false);
    await store.put(`${qualityPrefix(d)}${d.name}.json`, '{}');
    expect(await others).toEqual([undefined, undefined]);
    await first!.release();
  });

  it('passes the lease on when its holder releases it without storing a classifier (it failed)', async () => {
    const d = set(uniqueId('s'));
    const first = await turn(d, 'a');
    const second = turn(d, 'b');
    await first!.release();
    const next = await second;
    expect(next).toBeDefined();
    expect(await redis.get(keys.qualityLease(d.name, '16x16x3'))).toBe('b');
    await next!.release();
  });

  it('lets the lease of a holder that stopped renewing it lapse', async () => {
    const d = set(uniqueId('s'));
    // A holder that died: the key without anyone renewing it.
    await redis.set(keys.qualityLease(d.name, '16x16x3'), 'dead', 'PX', 300);
    const next = await turn(d, 'b');
    expect(next).toBeDefined();
    await next!.release();
  });

  it('needs no turn where a committed classifier reads the images', async () => {
    const lease = await qualityTurn({
      redis,
      key: keys.qualityLease('mnist', '28x28x1'),
      holder: 'a',
      store,
      dataset: { name: 'mnist', version: '0000000000000000', image_size: 28, channels: 1 },
    });
    expect(lease).toBeUndefined();
    expect(await redis.exists(keys.qualityLease('mnist', '28x28x1'))).toBe(0);
  });
});
