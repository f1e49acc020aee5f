import { createLogger, redisKeys } from '@gantry/shared';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { uniqueId } from '../../../test/support/infra.ts';
import { waitFor } from '../../../test/support/wait-for.ts';
import { LeaderLease } from './leader-lease.ts';

let redis: Redis;
beforeAll(() => {
  redis = new Redis(inject('redisUrl'));
});
afterAll(() => redis.disconnect());

const log = createLogger('test', 'silent');

describe('LeaderLease (real Redis)', () => {
  it('lets one of two coordinators lead; a clean stop hands over within a third of a lease, with a new epoch', async () => {
    const keys = redisKeys(uniqueId('lease'));
    const a = new LeaderLease(redis, keys, { id: 'a', leaseMs: 3000, log });
    const b = new LeaderLease(redis, keys, { id: 'b', leaseMs: 3000, log });
    await a.start();
    await b.start();
    expect(a.token).toBe('1:a');
    expect(b.held).toBe(false);
    expect(await redis.get(keys.leader)).toBe('1:a');
    await a.stop();
    const stoppedAt = Date.now();
    await waitFor('b to take over', async () => b.token, 5000);
    expect(Date.now() - stoppedAt).toBeLessThan(1000 + 1000);
    expect(b.token).toBe('2:b');
    await b.stop();
    expect(await redis.get(keys.leader)).toBeNull();
  });

  it('keeps the lease by renewing it past its period, and a successor takes it when renewals stop', async () => {
    const keys = redisKeys(uniqueId('lease'));
    // a's own connection: closing it stops a's renewals the way a SIGKILL or a partition would.
    const aRedis = new Redis(inject('redisUrl'), { maxRetriesPerRequest: 0 });
    const a = new LeaderLease(aRedis, keys, { id: 'a', leaseMs: 600, log });
    await a.start();
    const t0 = Date.now();
    await waitFor('three lease periods', async () => (Date.now() - t0 >= 1800 ? true : undefined), 5000);
    // Still the first epoch: a renewed it (its TTL never ran out).
    expect(await redis.get(keys.leader)).toBe('1:a');
    expect(a.token).toBe('1:a');
    aRedis.disconnect();
    const cutAt = Date.now();
    const b = new LeaderLease(redis, keys, { id: 'b', leaseMs: 600, log });
    await b.start();
    await waitFor('b to lead', async () => b.token, 5000);
    expect(b.token).toBe('2:b');
    // Within a lease period of a's last renewal (plus timer delays on a loaded machine).
    expect(Date.now() - cutAt).toBeLessThan(600 + 1000);
    // a stops acting as leader by itself, though it never heard that b took over.
    await waitFor('a to give up', async () => (a.held ? undefined : true), 5000);
    await a.stop();
    await b.stop();
  });

  it('gives a coordinator restarted under the same id its lease back at once, with a new epoch', async () => {
    const keys = redisKeys(uniqueId('lease'));
    const aRedis = new Redis(inject('redisUrl'), { maxRetriesPerRequest: 0 });
    const before = new LeaderLease(aRedis, keys, { id: 'pod-0', leaseMs: 60_000, log });
    await before.start();
    aRedis.disconnect(); // the container dies; its lease has a minute to run
    const after = new LeaderLease(redis, keys, { id: 'pod-0', leaseMs: 60_000, log });
    const other = new LeaderLease(redis, keys, { id: 'pod-1', leaseMs: 60_000, log });
    await other.start();
    await after.start();
    expect(other.held).toBe(false);
    expect(after.token).toBe('2:pod-0');
    await other.stop();
    await after.stop();
    await before.stop();
  });
});
