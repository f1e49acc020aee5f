import type { IEnvVar, IPodSpec, IVolume, IVolumeMount } from 'kubernetes-models/v1';
import { REDIS_PASSWORD_ENV, type RedisTarget } from './redis-target.ts';
import type { K8sValues, TolerationValues } from './values-types.ts';

const TOKENS_DIR = '/etc/gantry/tokens';
const REDIS_CA_DIR = '/etc/gantry/redis-ca';

/**
 * Environment every Gantry container (coordinator, workers) gets: Redis, the prefix, S3, the token file,
 * the listen address, the log level, then the container's `own` variables; the values' `gantry.env` last,
 * replacing a variable of the same name in place. The Redis password comes first: REDIS_URL refers to it
 * as `$(REDIS_PASSWORD)`, which Kubernetes expands only from variables defined before it.
 */
export function gantryEnv(v: K8sValues, redis: RedisTarget, own: IEnvVar[] = []): IEnvVar[] {
  const env: IEnvVar[] = [];
  if (v.redis.auth.enabled) {
    env.push({
      name: REDIS_PASSWORD_ENV,
      valueFrom: { secretKeyRef: { name: v.redis.auth.secretName, key: v.redis.auth.key } },
    });
  }
  env.push({ name: 'REDIS_URL', value: redis.url });
  // A cluster given by one seed URL is a cluster too.
  if (redis.cluster) env.push({ name: 'GANTRY_REDIS_CLUSTER', value: 'true' });
  if (v.redis.external.caSecret.name !== '') {
    env.push({ name: 'GANTRY_REDIS_CA_FILE', value: `${REDIS_CA_DIR}/${v.redis.external.caSecret.key}` });
  }
  env.push({ name: 'GANTRY_PREFIX', value: v.gantry.prefix });
  if (v.s3.endpoint !== '') env.push({ name: 'S3_ENDPOINT', value: v.s3.endpoint });
  env.push(
    { name: 'S3_BUCKET', value: v.s3.bucket },
    { name: 'S3_REGION', value: v.s3.region },
    { name: 'S3_FORCE_PATH_STYLE', value: String(v.s3.forcePathStyle) },
  );
  if (v.s3.secretName !== '') {
    env.push(
      {
        name: 'AWS_ACCESS_KEY_ID',
        valueFrom: { secretKeyRef: { name: v.s3.secretName, key: v.s3.accessKeyIdKey } },
      },
      {
        name: 'AWS_SECRET_ACCESS_KEY',
        valueFrom: { secretKeyRef: { name: v.s3.secretName, key: v.s3.secretAccessKeyKey } },
      },
    );
  }
  env.push(
    { name: 'GANTRY_API_TOKENS_FILE', value: `${TOKENS_DIR}/${v.auth.key}` },
    // In a pod the API and the workers' /metrics must be reachable from other pods; the tokens guard them.
    { name: 'GANTRY_HOST', value: '0.0.0.0' },
    { name: 'LOG_LEVEL', value: v.gantry.logLevel },
  );
  env.push(...own);
  for (const name of Object.keys(v.gantry.env).sort()) {
    const value = String(v.gantry.env[name]);
    const at = env.findIndex((e) => e.name === name);
    if (at >= 0) env[at] = { name, value };
    else env.push({ name, value });
  }
  return env;
}

/** Volumes of the token file and, for TLS with a private CA, the Redis CA. */
export function gantryVolumes(v: K8sValues): { volumes: IVolume[]; mounts: IVolumeMount[] } {
  const volumes: IVolume[] = [
    {
      name: 'api-tokens',
      secret: { secretName: v.auth.secretName, items: [{ key: v.auth.key, path: v.auth.key }] },
    },
  ];
  const mounts: IVolumeMount[] = [{ name: 'api-tokens', mountPath: TOKENS_DIR, readOnly: true }];
  const ca = v.redis.external.caSecret;
  if (ca.name !== '') {
    volumes.push({
      name: 'redis-ca',
      secret: { secretName: ca.name, items: [{ key: ca.key, path: ca.key }] },
    });
    mounts.push({ name: 'redis-ca', mountPath: REDIS_CA_DIR, readOnly: true });
  }
  return { volumes, mounts };
}

/** Placement and identity fields every Gantry pod spec shares. */
export function podBasics(
  v: K8sValues,
  placement: {
    nodeSelector: Record<string, string>;
    tolerations: TolerationValues[];
    affinity?: Record<string, unknown>;
    priorityClassName?: string;
  },
): Partial<IPodSpec> {
  return {
    serviceAccountName: v.name,
    automountServiceAccountToken: false,
    ...(v.imagePullSecrets.length > 0
      ? { imagePullSecrets: v.imagePullSecrets.map((name) => ({ name })) }
      : {}),
    ...(Object.keys(placement.nodeSelector).length > 0 ? { nodeSelector: placement.nodeSelector } : {}),
    ...(placement.tolerations.length > 0 ? { tolerations: placement.tolerations } : {}),
    ...(placement.affinity && Object.keys(placement.affinity).length > 0
      ? { affinity: placement.affinity }
      : {}),
    ...(placement.priorityClassName ? { priorityClassName: placement.priorityClassName } : {}),
    securityContext: { seccompProfile: { type: 'RuntimeDefault' } },
  };
}

/** A preStop hook that sleeps `seconds` (none for 0); the image's `sleep` runs it. */
export function preStopSleep(seconds: number) {
  return seconds > 0 ? { lifecycle: { preStop: { exec: { command: ['sleep', String(seconds)] } } } } : {};
}
