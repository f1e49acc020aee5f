import type { IDeployment } from 'kubernetes-models/apps/v1';
import type { IPodDisruptionBudget } from 'kubernetes-models/policy/v1';
import type { IService } from 'kubernetes-models/v1';
import { gantryEnv, gantryVolumes, podBasics, preStopSleep } from './gantry-pod.ts';
import { imageRef, type K8sObject, meta, selectorLabels } from './objects.ts';
import type { RedisTarget } from './redis-target.ts';
import type { K8sValues } from './values-types.ts';

/** The command a coordinator container runs (`gantry coordinator`: API and scheduler, env-configured). */
export const COORDINATOR_COMMAND = ['node', 'packages/coordinator/bin/gantry.mjs', 'coordinator'];

/**
 * The coordinators: a Deployment of `coordinator.replicas` (each serves the API; the Redis leader lease
 * lets one schedule), their Service (port `http`: the API and /metrics) and, with more than one
 * replica, a PodDisruptionBudget that keeps one up through drains.
 */
export function renderCoordinator(v: K8sValues, redis: RedisTarget): K8sObject[] {
  const c = v.coordinator;
  const selector = selectorLabels(v, 'coordinator');
  const { volumes, mounts } = gantryVolumes(v);
  const probe = (periodSeconds: number, failureThreshold: number) => ({
    httpGet: { path: '/healthz', port: 'http' },
    periodSeconds,
    failureThreshold,
    timeoutSeconds: 5,
  });
  const deployment: IDeployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: meta(v, 'coordinator', 'coordinator'),
    spec: {
      replicas: c.replicas,
      selector: { matchLabels: selector },
      // One at a time: the API stays up and the leader lease moves at most once per step.
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      template: {
        metadata: {
          labels: meta(v, 'coordinator', 'coordinator').labels,
          ...(Object.keys(c.podAnnotations).length > 0 ? { annotations: c.podAnnotations } : {}),
        },
        spec: {
          ...podBasics(v, { nodeSelector: c.nodeSelector, tolerations: c.tolerations, affinity: c.affinity }),
          terminationGracePeriodSeconds: c.terminationGracePeriodSeconds,
          containers: [
            {
              name: 'coordinator',
              image: imageRef(v.images.gantry),
              imagePullPolicy: v.images.gantry.pullPolicy,
              command: COORDINATOR_COMMAND,
              env: gantryEnv(v, redis, [
                { name: 'GANTRY_PORT', value: String(c.port) },
                // The pod's name in the leader lease: a restarted container takes its own lease back at once.
                { name: 'GANTRY_COORDINATOR_ID', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
              ]),
              ports: [{ name: 'http', containerPort: c.port, protocol: 'TCP' }],
              readinessProbe: probe(5, 3),
              livenessProbe: { ...probe(20, 6), initialDelaySeconds: 30 },
              resources: c.resources,
              volumeMounts: mounts,
              securityContext: { allowPrivilegeEscalation: false },
              ...preStopSleep(c.preStopSleepSeconds),
            },
          ],
          volumes,
        },
      },
    },
  };
  const service: IService = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(v, 'coordinator', 'coordinator', { annotations: c.service.annotations }),
    spec: {
      type: c.service.type,
      selector,
      ports: [{ name: 'http', port: c.port, targetPort: 'http', protocol: 'TCP' }],
    },
  };
  const objects: K8sObject[] = [deployment, service];
  if (c.podDisruptionBudget && c.replicas > 1) {
    const pdb: IPodDisruptionBudget = {
      apiVersion: 'policy/v1',
      kind: 'PodDisruptionBudget',
      metadata: meta(v, 'coordinator', 'coordinator'),
      spec: { maxUnavailable: 1, selector: { matchLabels: selector } },
    };
    objects.push(pdb);
  }
  return objects;
}
