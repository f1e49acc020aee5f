import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FieldIssue } from '@gantry/shared';
import { describe, expect, it } from 'vitest';
import { loadValues, type ValuesSources } from './values.ts';
import { ValuesError } from './values-error.ts';

const dir = mkdtempSync(join(tmpdir(), 'gantry-values-'));
let n = 0;
/** A values file with `text` in a temporary directory. */
function valuesFile(text: string): string {
  const f = join(dir, `v${n++}.yaml`);
  writeFileSync(f, text);
  return f;
}

const set = (...assignments: string[]): ValuesSources => ({
  sets: assignments.map((assignment) => ({ assignment, asString: false })),
});

/** The issues loadValues throws for `sources`. */
function issuesOf(sources: ValuesSources): readonly FieldIssue[] {
  try {
    loadValues(sources);
  } catch (err) {
    if (err instanceof ValuesError) return err.issues;
    throw err;
  }
  throw new Error('the values were accepted');
}

describe('loadValues', () => {
  it('accepts the defaults file as it is: hash-tagged prefix, two coordinators, one GPU pool scaled from zero', () => {
    const v = loadValues();
    expect(v.gantry.prefix).toBe('{gantry}');
    expect(v.coordinator.replicas).toBe(2);
    expect(v.worker.gpu.enabled).toBe(true);
    expect(v.worker.cpu.enabled).toBe(false);
    expect(v.autoscaling).toMatchObject({ enabled: true, pool: 'gpu', source: 'redis', minReplicas: 0 });
  });

  it('lays files over the defaults in order, then the --sets in order', () => {
    const a = valuesFile('worker:\n  gpu:\n    gpusPerPod: 2\n    replicas: 3\n');
    const b = valuesFile('worker:\n  gpu:\n    gpusPerPod: 4\n');
    const v = loadValues({
      files: [a, b],
      sets: [
        { assignment: 'worker.gpu.replicas=5', asString: false },
        { assignment: 'worker.gpu.replicas=6', asString: false },
        { assignment: 'images.gantry.tag=2.0', asString: true },
      ],
    });
    expect(v.worker.gpu.gpusPerPod).toBe(4);
    expect(v.worker.gpu.replicas).toBe(6);
    expect(v.images.gantry.tag).toBe('2.0');
    // Untouched defaults stay.
    expect(v.worker.gpu.checkpointSeconds).toBe(60);
  });

  it('names every bad field at once: range, unknown field, enum, type, pattern, a required field removed', () => {
    const removed = valuesFile('coordinator:\n  port: null\n');
    const issues = issuesOf({
      files: [removed],
      ...set(
        'worker.gpu.replicas=-1',
        'worker.gpu.replica=1',
        'redis.mode=cluster',
        'autoscaling.maxReplicas=many',
        'gantry.prefix=a:b',
      ),
    });
    expect(issues).toEqual(
      expect.arrayContaining([
        { path: 'worker.gpu.replicas', message: 'must be >= 0' },
        { path: 'worker.gpu.replica', message: 'is not a known field' },
        { path: 'redis.mode', message: 'must be one of internal, external' },
        { path: 'autoscaling.maxReplicas', message: 'must be integer' },
        { path: 'gantry.prefix', message: 'must be letters, digits, _ and -, with at most one {hash tag}' },
        { path: 'coordinator.port', message: 'is required' },
      ]),
    );
    expect(issues).toHaveLength(6);
  });

  it('names list items by index', () => {
    expect(issuesOf(set('worker.gpu.tolerations[0].effect=Sometimes'))).toEqual([
      {
        path: 'worker.gpu.tolerations[0].effect',
        message: 'must be one of NoSchedule, PreferNoSchedule, NoExecute',
      },
    ]);
  });

  it('refuses a grace period that cannot hold the preStop sleep and a checkpoint', () => {
    expect(
      issuesOf(set('worker.gpu.preStopSleepSeconds=10', 'worker.gpu.terminationGracePeriodSeconds=69')),
    ).toEqual([
      {
        path: 'worker.gpu.terminationGracePeriodSeconds',
        message: 'must hold the preStop sleep and a checkpoint: at least 10 + 60 = 70',
      },
    ]);
    expect(() =>
      loadValues(set('worker.gpu.preStopSleepSeconds=10', 'worker.gpu.terminationGracePeriodSeconds=70')),
    ).not.toThrow();
  });

  it('refuses autoscaling a pool that is off, and min above max', () => {
    expect(
      issuesOf(set('autoscaling.pool=cpu', 'autoscaling.minReplicas=9', 'autoscaling.maxReplicas=3')),
    ).toEqual([
      { path: 'autoscaling.pool', message: 'names the cpu pool, which is off (worker.cpu.enabled: false)' },
      { path: 'autoscaling.minReplicas', message: 'must be <= autoscaling.maxReplicas (3)' },
    ]);
  });

  it('refuses a Redis Cluster under a prefix without a hash tag', () => {
    const cluster = [
      'redis.mode=external',
      'redis.external.cluster=true',
      'redis.external.url=redis://a:1,redis://b:2',
    ];
    expect(issuesOf(set(...cluster, 'gantry.prefix=gantry'))).toEqual([
      {
        path: 'gantry.prefix',
        message: 'must hold a {hash tag} on a Redis Cluster (e.g. {gantry}), or BullMQ fails with CROSSSLOT',
      },
    ]);
    expect(loadValues(set(...cluster, 'gantry.prefix=prod-{g}')).gantry.prefix).toBe('prod-{g}');
  });

  it('refuses external Redis URLs that carry a password, are missing, or list nodes without cluster: true', () => {
    expect(issuesOf(set('redis.mode=external'))).toEqual([
      { path: 'redis.external.url', message: 'is required when redis.mode is external' },
    ]);
    expect(issuesOf(set('redis.mode=external', 'redis.external.url=redis://:hunter2@r:6379'))).toEqual([
      {
        path: 'redis.external.url',
        message: 'must not carry the password: put it in the Secret redis.auth.secretName (gantry-redis)',
      },
    ]);
    expect(issuesOf(set('redis.mode=external', 'redis.external.url=redis://a:1,redis://b:2'))[0]?.path).toBe(
      'redis.external.url',
    );
    expect(issuesOf(set('redis.external.url=redis://a:1'))).toEqual([
      { path: 'redis.external.url', message: 'is set, but redis.mode is internal' },
    ]);
  });

  it('refuses inline secrets given by halves, a token list without a read token, and a token name used twice', () => {
    expect(issuesOf(set('s3.accessKeyId=AKIAEXAMPLE'))).toEqual([
      { path: 's3.secretAccessKey', message: 'is needed with the other key' },
    ]);
    const token = 'x'.repeat(32);
    expect(
      issuesOf(
        set(
          `auth.tokens[0].role=admin`,
          'auth.tokens[0].name=ops',
          `auth.tokens[0].token=${token}`,
          'auth.tokens[1].role=admin',
          'auth.tokens[1].name=ops',
          `auth.tokens[1].token=${token}y`,
        ),
      ),
    ).toEqual([
      {
        path: 'auth.tokens',
        message: 'needs a read token (Prometheus scrapes with it, into auth.readToken.secretName)',
      },
      { path: 'auth.tokens[1].name', message: "'ops' is used twice" },
    ]);
  });

  it('names the file when a values file is missing or not a mapping', () => {
    const list = valuesFile('- a\n- b\n');
    expect(issuesOf({ files: [list] })).toEqual([{ path: list, message: 'must be a mapping of values' }]);
    expect(issuesOf({ files: [join(dir, 'nope.yaml')] })).toEqual([
      { path: join(dir, 'nope.yaml'), message: 'cannot read: ENOENT' },
    ]);
    // An empty file changes nothing.
    expect(loadValues({ files: [valuesFile('')] }).name).toBe('gantry');
  });
});
