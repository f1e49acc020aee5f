import type { IStatefulSet } from 'kubernetes-models/apps/v1';
import type { IService } from 'kubernetes-models/v1';
import { podBasics } from './gantry-pod.ts';
import { imageRef, type K8sObject, meta, selectorLabels } from './objects.ts';
import { REDIS_PASSWORD_ENV } from './redis-target.ts';
import type { K8sValues } from './values-types.ts';

/**
 * For `redis.mode: internal`: one Redis with its append-only file on a PersistentVolume (AOF, fsync per
 * `appendfsync`), `noeviction` (BullMQ's jobs must never be evicted), the password from its Secret, and
 * the headless Service whose DNS name REDIS_URL and KEDA use. Nothing for an external Redis.
 */
export function renderRedis(v: K8sValues): K8sObject[] {
  if (v.redis.mode !== 'internal') return [];
  const r = v.redis.internal;
  const auth = v.redis.auth;
  const selector = selectorLabels(v, 'redis');
  const args = [
    '--appendonly',
    'yes',
    '--appendfsync',
    r.appendfsync,
    '--dir',
    '/data',
    '--maxmemory-policy',
    'noeviction',
    // Kubernetes expands $(REDIS_PASSWORD) from the container's env: the password is in no manifest.
    ...(auth.enabled ? ['--requirepass', `$(${REDIS_PASSWORD_ENV})`] : []),
  ];
  const statefulSet: IStatefulSet = {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: meta(v, 'redis', 'redis'),
    spec: {
      serviceName: `${v.name}-redis`,
      replicas: 1,
      selector: { matchLabels: selector },
      template: {
        metadata: { labels: meta(v, 'redis', 'redis').labels },
        spec: {
          ...podBasics(v, { nodeSelector: r.nodeSelector, tolerations: r.tolerations }),
          // Room to finish the AOF rewrite it may be in and exit cleanly.
          terminationGracePeriodSeconds: 60,
          securityContext: { seccompProfile: { type: 'RuntimeDefault' }, fsGroup: 999 },
          containers: [
            {
              name: 'redis',
              image: imageRef(r.image),
              imagePullPolicy: r.image.pullPolicy,
              args,
              env: auth.enabled
                ? [
                    {
                      name: REDIS_PASSWORD_ENV,
                      valueFrom: { secretKeyRef: { name: auth.secretName, key: auth.key } },
                    },
                  ]
                : [],
              ports: [{ name: 'redis', containerPort: 6379, protocol: 'TCP' }],
              readinessProbe: { tcpSocket: { port: 'redis' }, periodSeconds: 5 },
              livenessProbe: { tcpSocket: { port: 'redis' }, periodSeconds: 20, initialDelaySeconds: 20 },
              resources: r.resources,
              volumeMounts: [{ name: 'data', mountPath: '/data' }],
              securityContext: { allowPrivilegeEscalation: false },
            },
          ],
        },
      },
      volumeClaimTemplates: [
        {
          metadata: { name: 'data' },
          spec: {
            accessModes: ['ReadWriteOnce'],
            ...(r.storage.storageClassName !== '' ? { storageClassName: r.storage.storageClassName } : {}),
            resources: { requests: { storage: r.storage.size } },
          },
        },
      ],
    },
  };
  const service: IService = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(v, 'redis', 'redis'),
    spec: {
      clusterIP: 'None',
      selector,
      ports: [{ name: 'redis', port: 6379, targetPort: 'redis', protocol: 'TCP' }],
    },
  };
  return [service, statefulSet];
}
