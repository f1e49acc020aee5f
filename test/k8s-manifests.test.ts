import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, refuseOpenDoor } from '@gantry/shared';
import { ScaledObject, TriggerAuthentication } from '@kubernetes-models/keda/keda.sh/v1alpha1';
import {
  PodMonitor,
  PrometheusRule,
  ServiceMonitor,
} from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { Command } from 'commander';
import { Deployment, StatefulSet } from 'kubernetes-models/apps/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import {
  ConfigMap,
  type IContainer,
  type IPodTemplateSpec,
  Secret,
  Service,
  ServiceAccount,
} from 'kubernetes-models/v1';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { readInfraFiles } from '../packages/coordinator/src/k8s/infra-files.ts';
import { registerK8sCommand, runRender } from '../packages/coordinator/src/k8s/k8s-command.ts';
import type { K8sObject } from '../packages/coordinator/src/k8s/objects.ts';
import { renderManifests } from '../packages/coordinator/src/k8s/render.ts';
import { queueKeys, REDIS_FORMULA } from '../packages/coordinator/src/k8s/render-autoscaling.ts';
import { SCRAPE_CONFIG_KEY } from '../packages/coordinator/src/k8s/render-monitoring.ts';
import { K8S_INFRA_DIR, loadValues, type SetArgument } from '../packages/coordinator/src/k8s/values.ts';
import type { K8sValues } from '../packages/coordinator/src/k8s/values-types.ts';
import { findOnPath } from '../packages/coordinator/src/local-stack/index.ts';

const root = join(import.meta.dirname, '..');
const infra = join(root, 'infra');
const files = readInfraFiles();
const examplesDir = join(K8S_INFRA_DIR, 'examples');
const examples = readdirSync(examplesDir)
  .filter((f) => f.endsWith('.yaml'))
  .sort();

const token = (i: number, role: string, name: string) => [
  `auth.tokens[${i}].role=${role}`,
  `auth.tokens[${i}].name=${name}`,
  `auth.tokens[${i}].token=${name}-${'x'.repeat(24)}`,
];

/** Values combinations beyond the files: each a name, `-f` files and `--set`s. */
const COMBOS: { name: string; files: string[]; sets: string[] }[] = [
  { name: 'defaults', files: [], sets: [] },
  ...examples.map((f) => ({ name: f, files: [join(examplesDir, f)], sets: [] })),
  {
    name: 'both pools, GPU autoscaled, 4 GPUs a pod',
    files: [],
    sets: ['worker.cpu.enabled=true', 'worker.gpu.gpusPerPod=4'],
  },
  {
    name: 'no autoscaling, fixed pools',
    files: [],
    sets: ['autoscaling.enabled=false', 'worker.cpu.enabled=true', 'worker.gpu.replicas=3'],
  },
  {
    name: 'no Redis password, hostPath cache, operator monitors, one coordinator behind a LoadBalancer',
    files: [],
    sets: [
      'redis.auth.enabled=false',
      'worker.cache.type=hostPath',
      'monitoring.operator.enabled=true',
      'monitoring.grafana.datasource=false',
      'coordinator.replicas=1',
      'coordinator.service.type=LoadBalancer',
    ],
  },
  {
    name: 'inline secrets (test cluster), MinIO, extra env',
    files: [],
    sets: [
      ...token(0, 'admin', 'ops'),
      ...token(1, 'read', 'prometheus'),
      's3.endpoint=http://minio.minio.svc:9000',
      's3.forcePathStyle=true',
      's3.accessKeyId=minio',
      's3.secretAccessKey=minio-secret-key',
      'redis.auth.password=0123456789abcdef',
      'gantry.env.GANTRY_LEASE_MS=5000',
      'imagePullSecrets[0]=registry',
    ],
  },
  {
    name: 'external Redis with an ACL user, a database and a private CA; IRSA',
    files: [join(examplesDir, 'external-redis.yaml')],
    sets: ['redis.external.url=rediss://gantry@redis.example.com:6380/2'],
  },
  {
    name: 'Redis Cluster scaled from Prometheus, another name and namespace',
    files: [join(examplesDir, 'redis-cluster.yaml')],
    sets: ['autoscaling.source=prometheus', 'name=gantry-b', 'namespace=ml', 'gantry.prefix={gantry-b}'],
  },
  {
    name: 'a Redis Cluster given by one seed URL',
    files: [join(examplesDir, 'redis-cluster.yaml')],
    sets: ['redis.external.url=redis://seed.redis.svc:6379'],
  },
  {
    name: 'CPU pool scaled, GPU pool fixed',
    files: [join(examplesDir, 'cpu-only.yaml')],
    sets: ['worker.gpu.enabled=true', 'worker.gpu.replicas=2'],
  },
];

const toSets = (sets: string[]): SetArgument[] => sets.map((assignment) => ({ assignment, asString: false }));
const rendered = COMBOS.map((c) => {
  const values = loadValues({ files: c.files, sets: toSets(c.sets) });
  return { ...c, values, objects: renderManifests(values, files) };
});

/** Each kind the renderer writes, with the model that validates it. */
const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'v1/ServiceAccount': ServiceAccount,
  'apps/v1/Deployment': Deployment,
  'apps/v1/StatefulSet': StatefulSet,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'keda.sh/v1alpha1/ScaledObject': ScaledObject,
  'keda.sh/v1alpha1/TriggerAuthentication': TriggerAuthentication,
  'monitoring.coreos.com/v1/PodMonitor': PodMonitor,
  'monitoring.coreos.com/v1/ServiceMonitor': ServiceMonitor,
  'monitoring.coreos.com/v1/PrometheusRule': PrometheusRule,
};

const podTemplates = (objects: K8sObject[]) =>
  objects.flatMap((o) =>
    o.kind === 'Deployment' || o.kind === 'StatefulSet'
      ? [{ owner: `${o.kind}/${o.metadata!.name}`, template: o.spec!.template as IPodTemplateSpec }]
      : [],
  );
const byKind = <K extends K8sObject['kind']>(objects: K8sObject[], kind: K) =>
  objects.filter((o) => o.kind === kind) as Extract<K8sObject, { kind: K }>[];
const matches = (selector: Record<string, string>, labels: Record<string, string> | undefined) =>
  Object.entries(selector).every(([k, v]) => labels?.[k] === v);
const envValue = (c: IContainer, name: string) => c.env?.find((e) => e.name === name)?.value;

/** Secret names the values give without their contents (the Secrets an operator creates). */
function secretNamesInValues(v: K8sValues): Set<string> {
  return new Set(
    [
      v.auth.secretName,
      v.auth.readToken.secretName,
      v.s3.secretName,
      v.redis.auth.secretName,
      v.redis.external.caSecret.name,
    ].filter((n) => n !== ''),
  );
}

/** Every Secret or ConfigMap an object refers to: `kind/name` with the key, if one is named. */
function references(
  o: K8sObject,
): { kind: 'Secret' | 'ConfigMap'; name: string; key?: string; from: string }[] {
  const refs: ReturnType<typeof references> = [];
  const from = `${o.kind}/${o.metadata!.name}`;
  if (o.kind === 'Deployment' || o.kind === 'StatefulSet') {
    const spec = o.spec!.template.spec!;
    for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
      for (const e of c.env ?? []) {
        const s = e.valueFrom?.secretKeyRef;
        if (s) refs.push({ kind: 'Secret', name: s.name!, key: s.key, from });
        const m = e.valueFrom?.configMapKeyRef;
        if (m) refs.push({ kind: 'ConfigMap', name: m.name!, key: m.key, from });
      }
      for (const e of c.envFrom ?? []) {
        if (e.secretRef) refs.push({ kind: 'Secret', name: e.secretRef.name!, from });
        if (e.configMapRef) refs.push({ kind: 'ConfigMap', name: e.configMapRef.name!, from });
      }
    }
    for (const vol of spec.volumes ?? []) {
      if (vol.secret)
        for (const i of vol.secret.items ?? [{ key: undefined }])
          refs.push({ kind: 'Secret', name: vol.secret.secretName!, key: i.key, from });
      if (vol.configMap) refs.push({ kind: 'ConfigMap', name: vol.configMap.name!, from });
    }
  }
  if (o.kind === 'TriggerAuthentication') {
    for (const r of o.spec!.secretTargetRef ?? [])
      refs.push({ kind: 'Secret', name: r.name, key: r.key, from });
  }
  if (o.kind === 'ServiceMonitor') {
    for (const e of o.spec!.endpoints ?? []) {
      const c = e.authorization?.credentials;
      if (c) refs.push({ kind: 'Secret', name: c.name!, key: c.key, from });
    }
  }
  if (o.kind === 'PodMonitor') {
    for (const e of o.spec!.podMetricsEndpoints ?? []) {
      const c = e.authorization?.credentials;
      if (c) refs.push({ kind: 'Secret', name: c.name!, key: c.key, from });
    }
  }
  return refs;
}

describe.each(rendered)('k8s manifests: $name', ({ values, objects }) => {
  it('passes the Kubernetes, KEDA and prometheus-operator schemas, object by object', () => {
    for (const o of objects) {
      const Model = MODELS[`${o.apiVersion}/${o.kind}`];
      expect(Model, `${o.apiVersion}/${o.kind} has a model`).toBeDefined();
      expect(() => new Model!(o as never).validate(), `${o.kind}/${o.metadata?.name}`).not.toThrow();
      expect(o.metadata?.namespace, `${o.kind}/${o.metadata?.name}`).toBe(values.namespace);
    }
    const ids = objects.map((o) => `${o.kind}/${o.metadata!.name}`);
    expect(new Set(ids).size, 'object names are unique per kind').toBe(ids.length);
  });

  it('selects with every Deployment, StatefulSet, Service and monitor the pods it means, on ports they have', () => {
    const templates = podTemplates(objects);
    for (const o of [...byKind(objects, 'Deployment'), ...byKind(objects, 'StatefulSet')]) {
      expect(
        matches(o.spec!.selector.matchLabels!, o.spec!.template.metadata!.labels),
        o.metadata!.name,
      ).toBe(true);
    }
    const portNames = (t: IPodTemplateSpec) =>
      t.spec!.containers.flatMap((c) => (c.ports ?? []).map((p) => p.name));
    const selected = (selector: Record<string, string>) =>
      templates.filter((t) => matches(selector, t.template.metadata!.labels));
    for (const svc of byKind(objects, 'Service')) {
      const pods = selected(svc.spec!.selector!);
      expect(
        pods.map((p) => p.owner),
        svc.metadata!.name,
      ).toHaveLength(1);
      for (const p of svc.spec!.ports!) expect(portNames(pods[0]!.template)).toContain(p.targetPort);
    }
    for (const sm of byKind(objects, 'ServiceMonitor')) {
      const svcs = byKind(objects, 'Service').filter((s) =>
        matches(sm.spec!.selector.matchLabels!, s.metadata!.labels),
      );
      expect(svcs.map((s) => s.metadata!.name)).toEqual([`${values.name}-coordinator`]);
      for (const e of sm.spec!.endpoints!) expect(svcs[0]!.spec!.ports!.map((p) => p.name)).toContain(e.port);
    }
    for (const pm of byKind(objects, 'PodMonitor')) {
      const pods = selected(pm.spec!.selector.matchLabels!);
      expect(pods.map((p) => p.owner).sort()).toEqual(
        byKind(objects, 'Deployment')
          .filter((d) => d.metadata!.name!.includes('-worker-'))
          .map((d) => `Deployment/${d.metadata!.name}`)
          .sort(),
      );
      for (const p of pods)
        for (const e of pm.spec!.podMetricsEndpoints!) expect(portNames(p.template)).toContain(e.port);
    }
  });

  it('refers only to Secrets and ConfigMaps that are rendered (with the key) or named in the values', () => {
    const named = secretNamesInValues(values);
    const rendered = new Map<string, Set<string>>();
    for (const o of objects) {
      if (o.kind === 'Secret')
        rendered.set(`Secret/${o.metadata!.name}`, new Set(Object.keys({ ...o.data, ...o.stringData })));
      if (o.kind === 'ConfigMap')
        rendered.set(`ConfigMap/${o.metadata!.name}`, new Set(Object.keys(o.data ?? {})));
    }
    for (const r of objects.flatMap(references)) {
      const keys = rendered.get(`${r.kind}/${r.name}`);
      if (keys) {
        if (r.key !== undefined)
          expect(keys, `${r.from} -> ${r.kind}/${r.name} key ${r.key}`).toContain(r.key);
      } else {
        expect(
          r.kind === 'Secret' && named.has(r.name),
          `${r.from} -> ${r.kind}/${r.name} is neither rendered nor named in the values`,
        ).toBe(true);
      }
    }
    // Secret contents only when the values hold them.
    const inline =
      values.auth.tokens.length > 0 || values.s3.accessKeyId !== '' || values.redis.auth.password !== '';
    expect(byKind(objects, 'Secret').length > 0).toBe(inline);
  });

  it('defines every $(VAR) an env value or argument uses before it, in the same container', () => {
    for (const { owner, template } of podTemplates(objects)) {
      for (const c of template.spec!.containers) {
        const seen = new Set<string>();
        for (const e of c.env ?? []) {
          for (const m of (e.value ?? '').matchAll(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g))
            expect(seen, `${owner} ${e.name}`).toContain(m[1]);
          seen.add(e.name);
        }
        for (const a of [...(c.args ?? []), ...(c.command ?? [])]) {
          for (const m of a.matchAll(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g))
            expect(seen, `${owner} arg ${a}`).toContain(m[1]);
        }
      }
    }
  });

  it("gives every Gantry container an environment that Gantry's own config accepts, listening on 0.0.0.0 with tokens", () => {
    // The pod as the kubelet would start it: Secrets with test contents, files mounted under a temp dir.
    const dir = mkdtempSync(join(tmpdir(), 'gantry-pod-'));
    const password = 'p4ssw0rd-0123456789';
    const readToken = 'r'.repeat(32);
    const secretValue = (name: string, key: string) =>
      name === values.redis.auth.secretName && key === values.redis.auth.key
        ? password
        : `${name}-${key}-value`;
    for (const d of byKind(objects, 'Deployment')) {
      const c = d.spec!.template.spec!.containers[0]!;
      const mounts = new Map((c.volumeMounts ?? []).map((m) => [m.name, m.mountPath]));
      const at = (path: string) => join(dir, path);
      for (const vol of d.spec!.template.spec!.volumes ?? []) {
        if (!vol.secret) continue;
        for (const item of vol.secret.items ?? []) {
          const file = at(join(mounts.get(vol.name)!, item.path));
          mkdirSync(join(file, '..'), { recursive: true });
          const text =
            vol.name === 'api-tokens' ? `admin ops ${'a'.repeat(32)}\nread prometheus ${readToken}\n` : 'PEM';
          writeFileSync(file, text);
        }
      }
      const env: NodeJS.ProcessEnv = {};
      for (const e of c.env ?? []) {
        let value = e.value ?? '';
        if (e.valueFrom?.secretKeyRef)
          value = secretValue(e.valueFrom.secretKeyRef.name!, e.valueFrom.secretKeyRef.key);
        if (e.valueFrom?.fieldRef) value = `${d.metadata!.name}-5d8f7c9b4-x2x7q`;
        value = value.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (_m, name: string) => env[name] ?? '');
        // Paths of mounted files, under the temp dir.
        if (value.startsWith('/etc/gantry/')) value = at(value);
        env[e.name] = value;
      }
      const config = loadConfig(env);
      expect(() => refuseOpenDoor(config.api.host, config.api.tokens.length), d.metadata!.name).not.toThrow();
      expect(config.api.host).toBe('0.0.0.0');
      expect(config.api.tokens.map((t) => t.name).sort()).toEqual(['ops', 'prometheus']);
      expect(config.prefix).toBe(values.gantry.prefix);
      expect(config.redis.cluster).toBe(values.redis.mode === 'external' && values.redis.external.cluster);
      expect(config.redis.options.password).toBe(values.redis.auth.enabled ? password : undefined);
      expect(config.s3.bucket).toBe(values.s3.bucket);
      if (d.metadata!.name!.includes('-worker-')) {
        const pool = d.metadata!.labels!['gantry.dev/pool'] as 'gpu' | 'cpu';
        expect(config.worker.concurrency).toBe(
          pool === 'gpu' ? values.worker.gpu.gpusPerPod : values.worker.cpu.concurrency,
        );
        expect(config.worker.metricsPort).toBe(values.worker.metricsPort);
        expect(config.worker.id).toBe(env.GANTRY_WORKER_ID);
      }
    }
  });

  it('carries exactly the rule files and dashboards of infra/ into their ConfigMaps, byte for byte', () => {
    const ruleFiles = readdirSync(join(infra, 'prometheus', 'rules'))
      .filter((f) => f.endsWith('.yml'))
      .sort();
    const dashboardFiles = readdirSync(join(infra, 'grafana', 'dashboards'))
      .filter((f) => f.endsWith('.json'))
      .sort();
    const configMaps = byKind(objects, 'ConfigMap');
    const rules = configMaps.find((c) => c.metadata!.name === `${values.name}-prometheus-rules`);
    if (values.monitoring.scrapeConfig.enabled) {
      expect(Object.keys(rules!.data!).sort()).toEqual(ruleFiles);
      for (const f of ruleFiles)
        expect(rules!.data![f]).toBe(readFileSync(join(infra, 'prometheus', 'rules', f), 'utf8'));
    } else expect(rules).toBeUndefined();
    const g = values.monitoring.grafana;
    const dashboards = configMaps.filter((c) => c.metadata!.labels?.[g.label] === g.labelValue);
    if (g.enabled) {
      expect(dashboards.flatMap((c) => Object.keys(c.data!)).sort()).toEqual(dashboardFiles);
      for (const c of dashboards) {
        const [f, text] = Object.entries(c.data!)[0]!;
        expect(text).toBe(readFileSync(join(infra, 'grafana', 'dashboards', f), 'utf8'));
        expect(c.metadata!.annotations).toEqual({ [g.folderAnnotation]: g.folder });
      }
    } else expect(dashboards).toEqual([]);
    const rule = byKind(objects, 'PrometheusRule')[0];
    if (rule) {
      const groups = ruleFiles.flatMap(
        (f) => parseYaml(readFileSync(join(infra, 'prometheus', 'rules', f), 'utf8')).groups,
      );
      expect(rule.spec!.groups).toEqual(groups);
    }
  });

  it('points the ScaledObject at a rendered worker Deployment and at the BullMQ keys under its GANTRY_PREFIX', () => {
    const scaled = byKind(objects, 'ScaledObject');
    expect(scaled).toHaveLength(values.autoscaling.enabled ? 1 : 0);
    const so = scaled[0];
    if (!so) return;
    const target = byKind(objects, 'Deployment').find(
      (d) => d.metadata!.name === so.spec!.scaleTargetRef.name,
    );
    expect(target, 'the scale target is rendered').toBeDefined();
    expect(target!.spec).not.toHaveProperty('replicas');
    const worker = target!.spec!.template.spec!.containers[0]!;
    const prefix = envValue(worker, 'GANTRY_PREFIX')!;
    const perPod = envValue(worker, 'GANTRY_WORKER_CONCURRENCY')!;
    expect(prefix).toBe(values.gantry.prefix);
    const triggers = so.spec!.triggers;
    if (values.autoscaling.source === 'prometheus') {
      expect(triggers.map((t) => t.type)).toEqual(['prometheus']);
      expect(triggers[0]!.metadata.threshold).toBe(perPod);
      return;
    }
    const keys = queueKeys(prefix);
    expect(triggers.map((t) => [t.name, t.metadata.listName])).toEqual([
      ['waiting', keys.waiting],
      ['active', keys.active],
    ]);
    // The formula sums exactly the named triggers; the target is the trials a pod runs.
    expect(
      REDIS_FORMULA.split('+')
        .map((s) => s.trim())
        .sort(),
    ).toEqual(triggers.map((t) => t.name).sort());
    expect(so.spec!.advanced!.scalingModifiers).toMatchObject({ formula: REDIS_FORMULA, target: perPod });
    // KEDA reads the Redis the workers use.
    const url = envValue(worker, 'REDIS_URL')!;
    const nodes = url.split(',').map((u) => new URL(u.replace('$(REDIS_PASSWORD)', 'pw')));
    const addresses = nodes.map((u) => `${u.hostname}:${u.port || '6379'}`).join(',');
    const cluster = values.redis.external.cluster;
    for (const t of triggers) {
      expect(t.type).toBe(cluster ? 'redis-cluster' : 'redis');
      expect(cluster ? t.metadata.addresses : t.metadata.address).toBe(addresses);
      expect(t.metadata.enableTLS).toBe(String(nodes[0]!.protocol === 'rediss:'));
      if (values.redis.auth.enabled) {
        const auth = byKind(objects, 'TriggerAuthentication').find(
          (a) => a.metadata!.name === t.authenticationRef?.name,
        );
        expect(auth!.spec!.secretTargetRef![0]).toEqual({
          parameter: 'password',
          name: values.redis.auth.secretName,
          key: values.redis.auth.key,
        });
      } else expect(t.authenticationRef).toBeUndefined();
    }
  });
});

describe('k8s manifests: checks beyond the schemas', () => {
  it('renders every example file', () => {
    expect(examples).toEqual(
      expect.arrayContaining([
        'cpu-only.yaml',
        'external-redis.yaml',
        'gpu-spot.yaml',
        'prometheus-autoscaling.yaml',
        'redis-cluster.yaml',
      ]),
    );
  });

  it('gives worker pods a grace period that holds a checkpoint, and GPU pods their GPUs', () => {
    for (const { values, objects } of rendered) {
      for (const d of byKind(objects, 'Deployment').filter((x) => x.metadata!.name!.includes('-worker-'))) {
        const pool = d.metadata!.labels!['gantry.dev/pool'] as 'gpu' | 'cpu';
        const spec = d.spec!.template.spec!;
        expect(spec.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(
          values.worker[pool].checkpointSeconds + values.worker[pool].preStopSleepSeconds,
        );
        const limits = spec.containers[0]!.resources!.limits!;
        if (pool === 'gpu') {
          expect(limits['nvidia.com/gpu']).toBe(String(values.worker.gpu.gpusPerPod));
          expect(spec.tolerations).toEqual(
            expect.arrayContaining([
              expect.objectContaining({ key: 'nvidia.com/gpu', effect: 'NoSchedule' }),
            ]),
          );
        } else expect(limits).not.toHaveProperty('nvidia.com/gpu');
      }
    }
  });

  it('writes a scrape config that promtool accepts, with the rule files beside it', async ({ skip }) => {
    const bin = await findOnPath('promtool');
    if (bin === undefined)
      return skip('promtool is not installed (apt-get install prometheus; `npm test` installs it)');
    const dir = mkdtempSync(join(tmpdir(), 'gantry-scrape-'));
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, 'r'.repeat(32));
    const v = loadValues({ sets: toSets([`monitoring.scrapeConfig.tokenFile=${tokenFile}`]) });
    const objects = renderManifests(v, files);
    const cm = (name: string) => byKind(objects, 'ConfigMap').find((c) => c.metadata!.name === name)!;
    mkdirSync(join(dir, 'rules'));
    for (const [f, text] of Object.entries(cm('gantry-prometheus-rules').data!))
      writeFileSync(join(dir, 'rules', f), text);
    type Job = { job_name: string; kubernetes_sd_configs?: unknown; static_configs?: unknown };
    const scrape = parseYaml(cm('gantry-prometheus-scrape').data![SCRAPE_CONFIG_KEY]!) as {
      scrape_configs: Job[];
    };
    expect(scrape.scrape_configs.map((j) => j.job_name)).toEqual(['gantry-coordinator', 'gantry-workers']);
    const check = (jobs: Job[]) => {
      writeFileSync(
        join(dir, 'prometheus.yml'),
        JSON.stringify({ scrape_configs: jobs, rule_files: ['rules/*.yml'] }),
      );
      return spawnSync(bin, ['check', 'config', 'prometheus.yml'], { cwd: dir, encoding: 'utf8' });
    };
    let r = check(scrape.scrape_configs);
    if (r.status !== 0 && /field kubernetes_sd_configs not found/.test(r.stdout + r.stderr)) {
      // Debian's Prometheus is built without Kubernetes discovery: check the rest of each job with a
      // static target in its place, and the discovery block by its shape.
      for (const j of scrape.scrape_configs) {
        expect(j.kubernetes_sd_configs).toEqual([
          expect.objectContaining({ role: 'pod', namespaces: { names: [v.namespace] } }),
        ]);
      }
      r = check(
        scrape.scrape_configs.map(({ kubernetes_sd_configs: _sd, ...rest }) => ({
          ...rest,
          static_configs: [{ targets: ['127.0.0.1:9'] }],
        })),
      );
    }
    expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
    expect(r.stdout).toContain('rules/gantry-alerts.yml');
  });

  it('refuses bad values from the command line with the field named, exit 2 and nothing on stdout', () => {
    const out: string[] = [];
    const err: string[] = [];
    const io = { stdout: (s: string) => out.push(s), stderr: (s: string) => err.push(s) };
    const code = runRender(
      { values: [], sets: toSets(['worker.gpu.replicas=-1', 'autoscaling.pool=cpu']), output: undefined },
      io,
    );
    expect(code).toBe(2);
    expect(out).toEqual([]);
    expect(err.join('')).toBe('error: invalid values\n  worker.gpu.replicas: must be >= 0\n');
    // Cross-field problems come once the schema passes.
    err.length = 0;
    expect(runRender({ values: [], sets: toSets(['autoscaling.pool=cpu']) }, io)).toBe(2);
    expect(err.join('')).toBe(
      'error: invalid values\n  autoscaling.pool: names the cpu pool, which is off (worker.cpu.enabled: false)\n',
    );
  });

  it('runs as `gantry k8s render` from the real CLI: YAML on stdout, or a file with -o; exit 2 on bad values', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gantry-render-'));
    const bin = join(root, 'packages', 'coordinator', 'bin', 'gantry.mjs');
    const out = join(dir, 'gantry.yaml');
    const run = (args: string[]) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, [bin, 'k8s', 'render', ...args]);
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d) => {
          stdout += d;
        });
        child.stderr.on('data', (d) => {
          stderr += d;
        });
        child.on('close', (code) => resolve({ code, stdout, stderr }));
      });
    // Both at once: most of each run is the CLI's start.
    const [ok, bad] = await Promise.all([
      run(['-f', join(examplesDir, 'cpu-only.yaml'), '--set-string', 'images.gantry.tag=1.10', '-o', out]),
      run(['--set', 'worker.gpu.replicas=-1']),
    ]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toBe('');
    const text = readFileSync(out, 'utf8');
    expect(text).toContain('image: gantry:1.10\n');
    expect(text).toContain('name: gantry-worker-cpu\n');
    expect(bad.code).toBe(2);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toBe('error: invalid values\n  worker.gpu.replicas: must be >= 0\n');
  });

  it('documents in infra/k8s/README.md only `gantry k8s render` commands whose flags the CLI has, and they render', () => {
    const readme = readFileSync(join(K8S_INFRA_DIR, 'README.md'), 'utf8');
    const program = new Command('gantry');
    registerK8sCommand(program);
    const render = program.commands
      .find((c) => c.name() === 'k8s')!
      .commands.find((c) => c.name() === 'render')!;
    const flags = new Set([
      '--help',
      ...render.options.flatMap((o) => [o.long, o.short].filter((f): f is string => f !== undefined)),
    ]);
    const commands = [...readme.matchAll(/gantry k8s render([^`\n]*)/g)].map((m) => m[1]!.trim());
    expect(commands.length).toBeGreaterThanOrEqual(3);
    for (const cmd of commands) {
      const words = cmd.split(/\s+/).filter((w) => w !== '');
      const values: string[] = [];
      const sets: SetArgument[] = [];
      for (let i = 0; i < words.length; i++) {
        const w = words[i]!;
        if (!w.startsWith('-')) continue;
        expect(flags, `\`gantry k8s render ${cmd}\` uses ${w}`).toContain(w);
        const arg = words[i + 1];
        if (w === '-f' || w === '--values')
          values.push(join(root, arg!.replace(/^my-values\.yaml$/, 'infra/k8s/examples/gpu-spot.yaml')));
        if (w === '--set' || w === '--set-string')
          sets.push({ assignment: arg!.replace(/^'|'$/g, ''), asString: w === '--set-string' });
      }
      if (words.includes('--help')) continue;
      const sink = {
        stdout: () => {},
        stderr: (s: string) => expect.fail(`\`gantry k8s render ${cmd}\`: ${s}`),
      };
      expect(runRender({ values, sets }, sink), cmd).toBe(0);
    }
  });
});
