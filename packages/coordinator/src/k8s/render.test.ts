import type { IDeployment, IStatefulSet } from 'kubernetes-models/apps/v1';
import type { IEnvVar } from 'kubernetes-models/v1';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { readInfraFiles } from './infra-files.ts';
import type { K8sObject } from './objects.ts';
import { redisTarget } from './redis-target.ts';
import { manifestsYaml, renderManifests } from './render.ts';
import { prometheusQuery, queueKeys } from './render-autoscaling.ts';
import { loadValues } from './values.ts';

const files = readInfraFiles();
const render = (...sets: string[]) =>
  renderManifests(loadValues({ sets: sets.map((assignment) => ({ assignment, asString: false })) }), files);
const find = <K extends K8sObject['kind']>(objects: K8sObject[], kind: K, name: string) =>
  objects.find((o) => o.kind === kind && o.metadata?.name === name) as
    | Extract<K8sObject, { kind: K }>
    | undefined;
const envOf = (d: IDeployment | IStatefulSet): IEnvVar[] => d.spec!.template.spec!.containers[0]!.env ?? [];

describe('redisTarget', () => {
  it('points the internal Redis at its Service by a name KEDA resolves from its own namespace', () => {
    expect(redisTarget(loadValues())).toEqual({
      url: 'redis://:$(REDIS_PASSWORD)@gantry-redis.gantry.svc.cluster.local:6379',
      addresses: ['gantry-redis.gantry.svc.cluster.local:6379'],
      cluster: false,
      tls: false,
      database: 0,
    });
  });

  it('puts the password into each node URL of an external cluster, keeping the user, TLS and ports', () => {
    const v = loadValues({
      sets: [
        { assignment: 'redis.mode=external', asString: false },
        { assignment: 'redis.external.cluster=true', asString: false },
        { assignment: 'redis.external.url=rediss://gantry@r-0:7000, rediss://gantry@r-1', asString: false },
      ],
    });
    expect(redisTarget(v)).toEqual({
      url: 'rediss://gantry:$(REDIS_PASSWORD)@r-0:7000,rediss://gantry:$(REDIS_PASSWORD)@r-1:6379',
      addresses: ['r-0:7000', 'r-1:6379'],
      cluster: true,
      tls: true,
      database: 0,
      username: 'gantry',
    });
  });

  it('keeps the database of a single external Redis and adds no password without auth', () => {
    const v = loadValues({
      sets: [
        { assignment: 'redis.mode=external', asString: false },
        { assignment: 'redis.auth.enabled=false', asString: false },
        { assignment: 'redis.external.url=redis://cache.internal/3', asString: false },
      ],
    });
    expect(redisTarget(v)).toMatchObject({ url: 'redis://cache.internal:6379/3', database: 3, tls: false });
  });
});

describe('renderManifests', () => {
  it('names the BullMQ keys of the trial queue under the prefix', () => {
    expect(queueKeys('{gantry}')).toEqual({
      waiting: '{gantry}:trials:wait',
      active: '{gantry}:trials:active',
      prioritized: '{gantry}:trials:prioritized',
    });
  });

  it('defines REDIS_PASSWORD before the REDIS_URL that refers to it, in every Gantry container', () => {
    const objects = render();
    for (const name of ['gantry-coordinator', 'gantry-worker-gpu']) {
      const names = envOf(find(objects, 'Deployment', name)!).map((e) => e.name);
      expect(names.indexOf('REDIS_PASSWORD'), name).toBeGreaterThanOrEqual(0);
      expect(names.indexOf('REDIS_PASSWORD'), name).toBeLessThan(names.indexOf('REDIS_URL'));
    }
  });

  it('leaves replicas out of the autoscaled Deployment only', () => {
    const objects = render('worker.cpu.enabled=true', 'worker.cpu.replicas=3');
    expect(find(objects, 'Deployment', 'gantry-worker-gpu')!.spec).not.toHaveProperty('replicas');
    expect(find(objects, 'Deployment', 'gantry-worker-cpu')!.spec!.replicas).toBe(3);
    const fixed = render('autoscaling.enabled=false', 'worker.gpu.replicas=4');
    expect(find(fixed, 'Deployment', 'gantry-worker-gpu')!.spec!.replicas).toBe(4);
    expect(fixed.some((o) => o.kind === 'ScaledObject')).toBe(false);
  });

  it('targets trials per pod: desired pods = ceil((waiting + active) / GPUs per pod)', () => {
    const so = find(render('worker.gpu.gpusPerPod=4'), 'ScaledObject', 'gantry-worker-gpu')!;
    expect(so.spec!.advanced!.scalingModifiers).toEqual({
      formula: 'waiting + active',
      target: '4',
      activationTarget: '0',
      metricType: 'AverageValue',
    });
    expect(so.spec!.triggers.map((t) => [t.name, t.metadata.listName])).toEqual([
      ['waiting', '{gantry}:trials:wait'],
      ['active', '{gantry}:trials:active'],
    ]);
    const gpu = find(render('worker.gpu.gpusPerPod=4'), 'Deployment', 'gantry-worker-gpu')!;
    const c = gpu.spec!.template.spec!.containers[0]!;
    expect(c.resources!.limits!['nvidia.com/gpu']).toBe('4');
    expect(c.env!.find((e) => e.name === 'GANTRY_WORKER_CONCURRENCY')!.value).toBe('4');
  });

  it('writes Secrets only for contents the values give', () => {
    expect(render().filter((o) => o.kind === 'Secret')).toEqual([]);
    const token = (role: string, name: string, t: string) => [
      `auth.tokens[${role === 'admin' ? 0 : 1}].role=${role}`,
      `auth.tokens[${role === 'admin' ? 0 : 1}].name=${name}`,
      `auth.tokens[${role === 'admin' ? 0 : 1}].token=${t}`,
    ];
    const objects = render(
      ...token('admin', 'ops', 'a'.repeat(20)),
      ...token('read', 'prom', 'r'.repeat(20)),
      'redis.auth.password=pw-1',
    );
    const secrets = objects.filter((o) => o.kind === 'Secret');
    expect(secrets.map((s) => [s.metadata!.name, s.stringData])).toEqual([
      ['gantry-api-tokens', { tokens: `admin ops ${'a'.repeat(20)}\nread prom ${'r'.repeat(20)}\n` }],
      ['gantry-read-token', { token: 'r'.repeat(20) }],
      ['gantry-redis', { password: 'pw-1' }],
    ]);
  });

  it('builds the prometheus query over one replica per state (two coordinators report one queue)', () => {
    expect(prometheusQuery(loadValues())).toBe(
      'sum(max by (state) (gantry_queue_jobs{namespace="gantry",job="gantry-coordinator",state=~"waiting|prioritized|active"}))',
    );
    const so = find(render('autoscaling.source=prometheus'), 'ScaledObject', 'gantry-worker-gpu')!;
    expect(so.spec!.triggers).toHaveLength(1);
    expect(so.spec!.triggers[0]!.metadata).toMatchObject({
      threshold: '1',
      serverAddress: 'http://prometheus-operated.monitoring.svc:9090',
    });
    expect(render('autoscaling.source=prometheus').some((o) => o.kind === 'TriggerAuthentication')).toBe(
      false,
    );
  });

  it('carries the rule files into a PrometheusRule group for group', () => {
    const rule = find(render('monitoring.operator.enabled=true'), 'PrometheusRule', 'gantry-alerts')!;
    const groups = files.rules.flatMap((f) => (parseYaml(f.text) as { groups: { name: string }[] }).groups);
    expect(rule.spec!.groups!.map((g) => g.name)).toEqual(groups.map((g) => g.name));
    expect(groups.length).toBeGreaterThan(0);
  });

  it('writes YAML that a YAML 1.1 reader (kubectl) reads back as the same objects: yes, on, 0.0.0.0 stay strings', () => {
    const objects = render();
    const text = manifestsYaml(objects, ['header']);
    expect(text).toContain('- "yes"\n');
    const docs = parseAllDocuments(text, { version: '1.1' });
    expect(docs.map((d) => d.toJS())).toEqual(objects);
  });
});
