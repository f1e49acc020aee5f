import { Cluster, Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { loadConfig } from './config.ts';
import { createRedis, duplicateRedis, parseRedisConnection } from './redis.ts';

// Clients made with lazyConnect open no connection: what they would connect to is read off their options.
describe('createRedis', () => {
  it('makes a Redis for one server, with the credentials, db and TLS of REDIS_URL', () => {
    const config = loadConfig({ REDIS_URL: 'rediss://app:pw@redis.internal:6380/3' });
    const client = createRedis(config, { lazyConnect: true, connectionName: 'test' });
    expect(client).toBeInstanceOf(Redis);
    const o = (client as Redis).options;
    expect([o.host, o.port, o.username, o.password, o.db, o.tls]).toEqual([
      'redis.internal',
      6380,
      'app',
      'pw',
      3,
      {},
    ]);
    expect([o.maxRetriesPerRequest, o.connectionName, o.lazyConnect]).toEqual([null, 'test', true]);
    const copy = duplicateRedis(client);
    expect(copy).toBeInstanceOf(Redis);
    expect((copy as Redis).options.port).toBe(6380);
    client.disconnect();
    copy.disconnect();
  });

  it("makes a Cluster for a cluster: every node's connection has the credentials and TLS", () => {
    const config = loadConfig({
      REDIS_URL: 'rediss://:pw@10.0.0.1:7000,rediss://10.0.0.2:7001',
      GANTRY_PREFIX: '{g}',
    });
    const client = createRedis(config, { lazyConnect: true, enableOfflineQueue: false });
    expect(client).toBeInstanceOf(Cluster);
    const cluster = client as Cluster;
    const o = cluster.options;
    expect(o.redisOptions).toMatchObject({
      password: 'pw',
      tls: {},
      maxRetriesPerRequest: null,
      lazyConnect: true,
    });
    expect([o.lazyConnect, o.enableOfflineQueue, o.enableReadyCheck]).toEqual([true, false, true]);
    // Capped backoff that never gives up (ioredis stops reconnecting on a non-number).
    expect([1, 5, 20, 1000].map((n) => o.clusterRetryStrategy?.(n, undefined))).toEqual([
      100, 500, 2000, 2000,
    ]);
    // With TLS a node is connected to by its name, not an address looked up for it.
    let looked: unknown;
    o.dnsLookup?.('redis-0.example', (_err, address) => {
      looked = address;
    });
    expect(looked).toBe('redis-0.example');
    expect(duplicateRedis(client)).toBeInstanceOf(Cluster);
    client.disconnect();
  });

  it("resolves names as ioredis does without TLS (a node's address, not its name)", async () => {
    const config = loadConfig({ REDIS_URL: 'redis://a:7000', GANTRY_REDIS_CLUSTER: 'true' });
    const client = createRedis(config, { lazyConnect: true }) as Cluster;
    const address = await new Promise((resolve) =>
      client.options.dnsLookup?.('localhost', (_err, a) => resolve(a)),
    );
    expect(address).toMatch(/^(127\.0\.0\.1|::1)$/);
    expect(client.options.redisOptions?.tls).toBeUndefined();
    client.disconnect();
  });
});

describe('parseRedisConnection', () => {
  it('returns the problems instead of throwing', () => {
    expect(parseRedisConnection({ url: 'redis://a:1,ftp://b:2' })).toEqual([
      {
        path: 'REDIS_URL',
        message: 'must be a redis:// or rediss:// (TLS) URL, or a list of them; not ftp://b:2',
      },
    ]);
  });
});
