import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isClusterSafePrefix, loadConfig } from './config.ts';
import { ConfigError } from './errors.ts';

/** The ConfigError loadConfig throws for `env`, as its message. */
function refusal(env: NodeJS.ProcessEnv): string {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe('INVALID_CONFIG');
    return (err as Error).message;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

describe('loadConfig', () => {
  it('has the documented defaults', () => {
    const c = loadConfig({});
    expect(c.redisUrl).toBe('redis://127.0.0.1:6379');
    expect(c.redis).toEqual({
      nodes: [{ host: '127.0.0.1', port: 6379 }],
      cluster: false,
      options: { maxRetriesPerRequest: null },
    });
    expect(c.prefix).toBe('{gantry}');
    expect(c.api.port).toBe(8080);
    expect(c.worker.lockMs).toBe(30_000);
    expect(c.worker.wasmGemm).toBe(true);
    expect(c.worker.backend).toBeUndefined();
  });

  it("turns Gantry's wasm matrix product off with GANTRY_WASM_GEMM=off", () => {
    expect(loadConfig({ GANTRY_WASM_GEMM: 'off' }).worker.wasmGemm).toBe(false);
  });

  it('names every bad variable', () => {
    const message = refusal({ GANTRY_WASM_GEMM: 'maybe', GANTRY_PORT: '99999' });
    expect(message).toMatch(/GANTRY_WASM_GEMM/);
    expect(message).toMatch(/GANTRY_PORT/);
  });
});

describe('GANTRY_PREFIX', () => {
  it('takes letters, digits, _ and -, with or without one hash tag', () => {
    for (const prefix of [
      'g-1a2b',
      'my_app',
      '{gantry}',
      '{g-1a2b}',
      'team-{gpu_a}',
      'a{b}c',
      'x'.repeat(64),
    ])
      expect(loadConfig({ GANTRY_PREFIX: prefix }).prefix).toBe(prefix);
  });

  it('refuses other characters, an empty or second hash tag, and more than 64 characters', () => {
    for (const prefix of ['', 'a:b', 'a b', '{}', '{a}{b}', '{a', 'a}', '{{a}}', 'x'.repeat(65)])
      expect(refusal({ GANTRY_PREFIX: prefix })).toMatch(/^invalid configuration: GANTRY_PREFIX: /);
  });

  it('is cluster-safe exactly when it carries a hash tag', () => {
    expect(isClusterSafePrefix('{gantry}')).toBe(true);
    expect(isClusterSafePrefix('team-{a}')).toBe(true);
    expect(isClusterSafePrefix('gantry')).toBe(false);
    expect(isClusterSafePrefix('{}')).toBe(false);
  });

  it('without a hash tag is refused on a Redis Cluster, saying why and what to write', () => {
    for (const env of [
      { REDIS_URL: 'redis://10.0.0.1:6379,redis://10.0.0.2:6379', GANTRY_PREFIX: 'prod' },
      { REDIS_URL: 'redis://10.0.0.1:6379', GANTRY_REDIS_CLUSTER: 'true', GANTRY_PREFIX: 'prod' },
    ]) {
      const message = refusal(env);
      expect(message).toMatch(/GANTRY_PREFIX: 'prod' has no hash tag/);
      expect(message).toMatch(/CROSSSLOT/);
      expect(message).toMatch(/write '\{prod\}'/);
    }
    expect(loadConfig({ REDIS_URL: 'redis://10.0.0.1:6379', GANTRY_PREFIX: 'prod' }).prefix).toBe('prod');
  });
});

describe('REDIS_URL', () => {
  it('is one server, with its credentials and db', () => {
    const c = loadConfig({ REDIS_URL: 'redis://app:p%40ss@redis.internal:6380/2' });
    expect(c.redis).toEqual({
      nodes: [{ host: 'redis.internal', port: 6380 }],
      cluster: false,
      options: { maxRetriesPerRequest: null, username: 'app', password: 'p@ss', db: 2 },
    });
    expect(c.redisUrl).toBe('redis://app:p%40ss@redis.internal:6380/2');
  });

  it("lists a cluster's nodes; credentials given on one node are the cluster's", () => {
    const c = loadConfig({ REDIS_URL: 'redis://:pw@10.0.0.1:6379, redis://10.0.0.2 ,redis://[::1]:7000' });
    expect(c.redis).toEqual({
      nodes: [
        { host: '10.0.0.1', port: 6379 },
        { host: '10.0.0.2', port: 6379 },
        { host: '::1', port: 7000 },
      ],
      cluster: true,
      options: { maxRetriesPerRequest: null, password: 'pw' },
    });
    expect(c.prefix).toBe('{gantry}');
    expect(c.redisUrl).toBe('redis://:pw@10.0.0.1:6379');
  });

  it('is one seed node of a cluster with GANTRY_REDIS_CLUSTER=true', () => {
    const c = loadConfig({ REDIS_URL: 'redis://seed:6379', GANTRY_REDIS_CLUSTER: 'true' });
    expect(c.redis.cluster).toBe(true);
    expect(c.redis.nodes).toEqual([{ host: 'seed', port: 6379 }]);
    expect(loadConfig({ REDIS_URL: 'redis://seed:6379', GANTRY_REDIS_CLUSTER: 'false' }).redis.cluster).toBe(
      false,
    );
  });

  it('uses TLS for rediss:// and with GANTRY_REDIS_CA_FILE, on one server and on a cluster', () => {
    const ca = join(mkdtempSync(join(tmpdir(), 'gantry-config-')), 'ca.pem');
    writeFileSync(ca, 'PEM TEXT');
    expect(loadConfig({ REDIS_URL: 'rediss://r:6379' }).redis.options.tls).toEqual({});
    expect(loadConfig({ REDIS_URL: 'redis://r:6379', GANTRY_REDIS_CA_FILE: ca }).redis.options.tls).toEqual({
      ca: 'PEM TEXT',
    });
    const c = loadConfig({ REDIS_URL: 'rediss://:pw@a:6379,rediss://b:6379', GANTRY_REDIS_CA_FILE: ca });
    expect(c.redis.cluster).toBe(true);
    expect(c.redis.options).toEqual({ maxRetriesPerRequest: null, password: 'pw', tls: { ca: 'PEM TEXT' } });
    expect(c.redisOptions).toEqual({ maxRetriesPerRequest: null, tls: { ca: 'PEM TEXT' } });
    expect(loadConfig({ REDIS_URL: 'redis://r:6379' }).redis.options.tls).toBeUndefined();
  });

  it('refuses what it cannot connect to, naming the variable and never the password', () => {
    const cases: [NodeJS.ProcessEnv, RegExp][] = [
      [
        { REDIS_URL: 'http://:secret@r:6379' },
        /REDIS_URL: must be a redis:\/\/ .*; not http:\/\/:\*\*\*@r:6379/,
      ],
      [{ REDIS_URL: 'not a url' }, /REDIS_URL: must be a redis:\/\/ or rediss:\/\/ \(TLS\) URL/],
      [{ REDIS_URL: 'redis://a:6379,,redis://b:6379' }, /REDIS_URL: an empty entry/],
      [{ REDIS_URL: 'redis://a:6379,rediss://b:6379' }, /REDIS_URL: mixes redis:\/\/ and rediss:\/\//],
      [{ REDIS_URL: 'redis://:pw-one@a:6379,redis://:pw-two@b:6379' }, /REDIS_URL: .*different credentials/],
      [{ REDIS_URL: 'redis://a:6379/3,redis://b:6379' }, /REDIS_URL: a Redis Cluster has database 0 only/],
      [{ REDIS_URL: 'redis://a:6379/x' }, /REDIS_URL: '\/x' is not a database number/],
      [{ REDIS_URL: 'redis://a:6379?family=6' }, /REDIS_URL: .*query parameters are not read/],
      [
        { REDIS_URL: 'redis://a:6379,redis://b:6379', GANTRY_REDIS_CLUSTER: 'false' },
        /GANTRY_REDIS_CLUSTER: is false, but REDIS_URL lists several nodes/,
      ],
      [{ GANTRY_REDIS_CLUSTER: 'yes' }, /GANTRY_REDIS_CLUSTER/],
    ];
    for (const [env, expected] of cases) {
      const message = refusal(env);
      expect(message).toMatch(expected);
      expect(message).not.toMatch(/secret|pw-one|pw-two/);
    }
  });
});
