import { TRIAL_QUEUE } from '@gantry/shared';
import type { IScaledObject, ITriggerAuthentication } from '@kubernetes-models/keda/keda.sh/v1alpha1';
import { type K8sObject, meta, namedMeta } from './objects.ts';
import { REDIS_USERNAME_ENV, type RedisTarget } from './redis-target.ts';
import { trialsPerPod, workerDeploymentName } from './render-workers.ts';
import type { K8sValues } from './values-types.ts';

/**
 * The BullMQ keys of the trial queue under `prefix` that the autoscaler reads: `wait` (a list of job
 * ids no worker has taken) and `active` (a list of those a worker holds). Prioritized jobs would sit in
 * a sorted set, `<prefix>:trials:prioritized`; the scheduler never sets a priority, so none do.
 */
export function queueKeys(prefix: string): { waiting: string; active: string; prioritized: string } {
  const base = `${prefix}:${TRIAL_QUEUE}`;
  return { waiting: `${base}:wait`, active: `${base}:active`, prioritized: `${base}:prioritized` };
}

/** The composite metric of the redis source: the two named triggers summed (HPA alone takes their max). */
export const REDIS_FORMULA = 'waiting + active';

/** Job states whose sum is the prometheus source's metric. */
export const QUEUE_STATES = ['waiting', 'prioritized', 'active'] as const;

/**
 * The prometheus source's query: per state the largest value any coordinator reports (every replica
 * reports the same queue, so a plain sum would count it once per replica), summed over the states.
 */
export function prometheusQuery(v: K8sValues): string {
  if (v.autoscaling.prometheus.query !== '') return v.autoscaling.prometheus.query;
  const matchers = `namespace="${v.namespace}",job="gantry-coordinator",state=~"${QUEUE_STATES.join('|')}"`;
  return `sum(max by (state) (gantry_queue_jobs{${matchers}}))`;
}

/**
 * KEDA's ScaledObject for the autoscaled pool's Deployment (and, for the redis source with a password,
 * the TriggerAuthentication it reads the password with). Desired pods = ceil(metric / trials per pod),
 * metric = jobs waiting + jobs active, so the target never drops below the pods that are busy; 0 with
 * an empty queue after `cooldownPeriod`.
 */
export function renderAutoscaling(v: K8sValues, redis: RedisTarget): K8sObject[] {
  const a = v.autoscaling;
  if (!a.enabled) return [];
  const perPod = String(trialsPerPod(v, a.pool));
  const objects: K8sObject[] = [];
  const base = {
    scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: workerDeploymentName(v, a.pool) },
    pollingInterval: a.pollingInterval,
    cooldownPeriod: a.cooldownPeriod,
    minReplicaCount: a.minReplicas,
    maxReplicaCount: a.maxReplicas,
  };
  const behavior = {
    scaleDown: {
      stabilizationWindowSeconds: a.scaleDown.stabilizationWindowSeconds,
      policies: [
        { type: 'Pods', value: a.scaleDown.podsPerPeriod, periodSeconds: a.scaleDown.periodSeconds },
      ],
    },
  };
  let spec: IScaledObject['spec'];
  if (a.source === 'redis') {
    const keys = queueKeys(v.gantry.prefix);
    const authName = `${v.name}-redis-keda`;
    const connection: Record<string, string> = {
      ...(redis.cluster ? { addresses: redis.addresses.join(',') } : { address: redis.addresses[0]! }),
      enableTLS: String(redis.tls),
      ...(!redis.cluster && redis.database !== 0 ? { databaseIndex: String(redis.database) } : {}),
      ...(redis.username !== undefined ? { usernameFromEnv: REDIS_USERNAME_ENV } : {}),
    };
    const trigger = (name: 'waiting' | 'active') => ({
      type: redis.cluster ? 'redis-cluster' : 'redis',
      name,
      metadata: { ...connection, listName: keys[name], listLength: perPod, activationListLength: '0' },
      ...(v.redis.auth.enabled ? { authenticationRef: { name: authName } } : {}),
    });
    spec = {
      ...base,
      advanced: {
        horizontalPodAutoscalerConfig: { behavior },
        scalingModifiers: {
          formula: REDIS_FORMULA,
          target: perPod,
          activationTarget: '0',
          metricType: 'AverageValue',
        },
      },
      triggers: [trigger('waiting'), trigger('active')],
    };
    if (v.redis.auth.enabled) {
      const ca = v.redis.external.caSecret;
      const auth: ITriggerAuthentication = {
        apiVersion: 'keda.sh/v1alpha1',
        kind: 'TriggerAuthentication',
        metadata: meta(v, 'redis-keda', 'worker'),
        spec: {
          secretTargetRef: [
            { parameter: 'password', name: v.redis.auth.secretName, key: v.redis.auth.key },
            ...(ca.name !== '' ? [{ parameter: 'ca', name: ca.name, key: ca.key }] : []),
          ],
        },
      };
      objects.push(auth);
    }
  } else {
    spec = {
      ...base,
      advanced: { horizontalPodAutoscalerConfig: { behavior } },
      triggers: [
        {
          type: 'prometheus',
          name: 'queue',
          metadata: {
            serverAddress: v.monitoring.prometheusUrl,
            query: prometheusQuery(v),
            threshold: perPod,
            activationThreshold: '0',
            // No series (no coordinator scraped) is an error, under which KEDA keeps the pool's size,
            // rather than 0, which would drain busy workers while the coordinators are down.
            ignoreNullValues: 'false',
          },
        },
      ],
    };
  }
  const scaledObject: IScaledObject = {
    apiVersion: 'keda.sh/v1alpha1',
    kind: 'ScaledObject',
    metadata: namedMeta(v, workerDeploymentName(v, a.pool), { component: 'worker', pool: a.pool }),
    spec,
  };
  objects.push(scaledObject);
  return objects;
}
