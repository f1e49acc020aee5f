import type { ISecret, IServiceAccount } from 'kubernetes-models/v1';
import { stringify } from 'yaml';
import type { InfraFiles } from './infra-files.ts';
import { type K8sObject, namedMeta } from './objects.ts';
import { type RedisTarget, redisTarget } from './redis-target.ts';
import { renderAutoscaling } from './render-autoscaling.ts';
import { renderCoordinator } from './render-coordinator.ts';
import { renderMonitoring } from './render-monitoring.ts';
import { renderRedis } from './render-redis.ts';
import { renderWorkers } from './render-workers.ts';
import { ValuesError } from './values-error.ts';
import type { K8sValues } from './values-types.ts';

/**
 * Every object of a Gantry deployment the values describe, in the order `kubectl apply` wants them
 * (Secrets and ConfigMaps before the pods that mount them, the scale target before its ScaledObject).
 * @throws ValuesError when the values were not validated (loadValues validates).
 */
export function renderManifests(v: K8sValues, files: InfraFiles): K8sObject[] {
  const redis: RedisTarget | { path: string; message: string }[] = redisTarget(v);
  if (Array.isArray(redis)) throw new ValuesError(redis);
  const serviceAccount: IServiceAccount = {
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: namedMeta(v, v.name, { annotations: v.serviceAccount.annotations }),
    automountServiceAccountToken: false,
  };
  return [
    serviceAccount,
    ...renderSecrets(v),
    ...renderMonitoring(v, files),
    ...renderRedis(v),
    ...renderCoordinator(v, redis),
    ...renderWorkers(v, redis),
    ...renderAutoscaling(v, redis),
  ];
}

/**
 * Secrets the values give the contents of (`auth.tokens`, `s3.accessKeyId`/`secretAccessKey`,
 * `redis.auth.password`); those they only name are expected to exist. Entries for one Secret name are
 * merged into one Secret.
 */
function renderSecrets(v: K8sValues): ISecret[] {
  const byName = new Map<string, Record<string, string>>();
  const put = (name: string, key: string, value: string) => {
    const data = byName.get(name) ?? {};
    data[key] = value;
    byName.set(name, data);
  };
  const tokens = v.auth.tokens;
  if (tokens.length > 0) {
    put(v.auth.secretName, v.auth.key, `${tokens.map((t) => `${t.role} ${t.name} ${t.token}`).join('\n')}\n`);
    const read = tokens.find((t) => t.role === 'read');
    if (read) put(v.auth.readToken.secretName, v.auth.readToken.key, read.token);
  }
  if (v.s3.accessKeyId !== '') {
    put(v.s3.secretName, v.s3.accessKeyIdKey, v.s3.accessKeyId);
    put(v.s3.secretName, v.s3.secretAccessKeyKey, v.s3.secretAccessKey);
  }
  if (v.redis.auth.enabled && v.redis.auth.password !== '') {
    put(v.redis.auth.secretName, v.redis.auth.key, v.redis.auth.password);
  }
  return [...byName].map(([name, stringData]) => ({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: namedMeta(v, name),
    type: 'Opaque',
    stringData,
  }));
}

/** The objects as one multi-document YAML stream, for `kubectl apply -f -` or a GitOps repository. */
export function manifestsYaml(objects: readonly K8sObject[], header: string[] = []): string {
  const head = header.map((l) => `# ${l}\n`).join('');
  return head + objects.map((o) => `---\n${stringify(o, { version: '1.1', lineWidth: 0 })}`).join('');
}
