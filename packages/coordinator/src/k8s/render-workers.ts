import type { IDeployment } from 'kubernetes-models/apps/v1';
import type { IEnvVar, IVolume } from 'kubernetes-models/v1';
import { gantryEnv, gantryVolumes, podBasics, preStopSleep } from './gantry-pod.ts';
import { imageRef, type K8sObject, meta, selectorLabels } from './objects.ts';
import { parseQuantity } from './quantity.ts';
import { REDIS_USERNAME_ENV, type RedisTarget } from './redis-target.ts';
import type { K8sValues, PoolValues, WorkerPool } from './values-types.ts';

/** The command a worker container runs (`gantry-worker`, env-configured). */
export const WORKER_COMMAND = ['node', 'packages/worker/bin/gantry-worker.mjs'];
const CACHE_DIR = '/var/cache/gantry';

/** Trials one pod of `pool` runs at once: one per GPU, or the CPU pool's concurrency. */
export function trialsPerPod(v: K8sValues, pool: WorkerPool): number {
  return pool === 'gpu' ? v.worker.gpu.gpusPerPod : v.worker.cpu.concurrency;
}

/** The name of `pool`'s Deployment (KEDA's scale target). */
export function workerDeploymentName(v: K8sValues, pool: WorkerPool): string {
  return `${v.name}-worker-${pool}`;
}

/** Whether KEDA owns `pool`'s replica count (the Deployment then leaves `replicas` out). */
export function autoscaled(v: K8sValues, pool: WorkerPool): boolean {
  return v.autoscaling.enabled && v.autoscaling.pool === pool;
}

/** The worker Deployments of the enabled pools. */
export function renderWorkers(v: K8sValues, redis: RedisTarget): K8sObject[] {
  return (['gpu', 'cpu'] as const)
    .filter((pool) => v.worker[pool].enabled)
    .map((pool) => workerDeployment(v, redis, pool));
}

function workerDeployment(v: K8sValues, redis: RedisTarget, pool: WorkerPool): IDeployment {
  const p: PoolValues = v.worker[pool];
  const suffix = `worker-${pool}`;
  const { volumes, mounts } = gantryVolumes(v);
  const cache = v.worker.cache;
  const cacheVolume: IVolume =
    cache.type === 'emptyDir'
      ? { name: 'dataset-cache', emptyDir: { sizeLimit: cache.sizeLimit } }
      : { name: 'dataset-cache', hostPath: { path: cache.hostPath, type: 'DirectoryOrCreate' } };
  const own: IEnvVar[] = [
    // The pod's name: what the coordinator, the heartbeats and the metrics call this worker.
    { name: 'GANTRY_WORKER_ID', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
    { name: 'GANTRY_WORKER_CONCURRENCY', value: String(trialsPerPod(v, pool)) },
    { name: 'GANTRY_BACKEND', value: pool === 'gpu' ? 'tensorflow' : v.worker.cpu.backend },
    { name: 'GANTRY_METRICS_PORT', value: String(v.worker.metricsPort) },
    { name: 'GANTRY_CACHE_DIR', value: CACHE_DIR },
    { name: 'GANTRY_CACHE_BYTES', value: String(Math.floor(parseQuantity(cache.maxSize)!)) },
  ];
  // KEDA reads the ACL user from the scale target's environment (usernameFromEnv).
  if (redis.username !== undefined) own.push({ name: REDIS_USERNAME_ENV, value: redis.username });
  const limits = {
    ...p.resources.limits,
    ...(pool === 'gpu' ? { 'nvidia.com/gpu': String(v.worker.gpu.gpusPerPod) } : {}),
  };
  const image = pool === 'gpu' ? v.images.gpuWorker : v.images.gantry;
  const labels = meta(v, suffix, 'worker', { pool }).labels;
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: meta(v, suffix, 'worker', { pool }),
    spec: {
      ...(autoscaled(v, pool) ? {} : { replicas: p.replicas }),
      selector: { matchLabels: selectorLabels(v, 'worker', pool) },
      // No surge: a new pod needs a GPU an old one may still hold. A replaced worker checkpoints and
      // hands its trials back; another resumes them.
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 0, maxUnavailable: '25%' } },
      template: {
        metadata: {
          labels,
          ...(Object.keys(p.podAnnotations).length > 0 ? { annotations: p.podAnnotations } : {}),
        },
        spec: {
          ...podBasics(v, {
            nodeSelector: p.nodeSelector,
            tolerations: p.tolerations,
            affinity: p.affinity,
            priorityClassName: p.priorityClassName,
          }),
          // Sized to a checkpoint (worker.<pool>.checkpointSeconds; the values check it holds it).
          terminationGracePeriodSeconds: p.terminationGracePeriodSeconds,
          containers: [
            {
              name: 'worker',
              image: imageRef(image),
              imagePullPolicy: image.pullPolicy,
              command: WORKER_COMMAND,
              env: gantryEnv(v, redis, own),
              ports: [{ name: 'metrics', containerPort: v.worker.metricsPort, protocol: 'TCP' }],
              readinessProbe: {
                httpGet: { path: '/healthz', port: 'metrics' },
                periodSeconds: 10,
                failureThreshold: 3,
                timeoutSeconds: 5,
              },
              resources: { requests: p.resources.requests, limits },
              volumeMounts: [...mounts, { name: 'dataset-cache', mountPath: CACHE_DIR }],
              securityContext: { allowPrivilegeEscalation: false },
              ...preStopSleep(p.preStopSleepSeconds),
            },
          ],
          volumes: [...volumes, cacheVolume],
        },
      },
    },
  };
}
