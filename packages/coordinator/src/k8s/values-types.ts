/**
 * The values of `gantry k8s render` once merged and validated: infra/k8s/values.schema.json as a type
 * (every field is required there, the defaults file fills them). infra/k8s/values.yaml documents each.
 */
export interface K8sValues {
  name: string;
  namespace: string;
  clusterDomain: string;
  images: { gantry: ImageValues; gpuWorker: ImageValues };
  imagePullSecrets: string[];
  serviceAccount: { annotations: Record<string, string> };
  /** `env`: numbers and booleans are written as text (`--set gantry.env.GANTRY_LEASE_MS=5000`). */
  gantry: { prefix: string; logLevel: string; env: Record<string, string | number | boolean> };
  auth: {
    secretName: string;
    key: string;
    readToken: { secretName: string; key: string };
    tokens: { role: 'admin' | 'read'; name: string; token: string }[];
  };
  s3: {
    endpoint: string;
    bucket: string;
    region: string;
    forcePathStyle: boolean;
    secretName: string;
    accessKeyIdKey: string;
    secretAccessKeyKey: string;
    accessKeyId: string;
    secretAccessKey: string;
  };
  redis: {
    mode: 'internal' | 'external';
    auth: { enabled: boolean; secretName: string; key: string; password: string };
    internal: {
      image: ImageValues;
      storage: { size: string; storageClassName: string };
      appendfsync: 'always' | 'everysec';
      resources: ResourceValues;
      nodeSelector: Record<string, string>;
      tolerations: TolerationValues[];
    };
    external: { url: string; cluster: boolean; caSecret: { name: string; key: string } };
  };
  coordinator: {
    replicas: number;
    port: number;
    resources: ResourceValues;
    service: { type: 'ClusterIP' | 'NodePort' | 'LoadBalancer'; annotations: Record<string, string> };
    podDisruptionBudget: boolean;
    preStopSleepSeconds: number;
    terminationGracePeriodSeconds: number;
    podAnnotations: Record<string, string>;
    nodeSelector: Record<string, string>;
    tolerations: TolerationValues[];
    affinity: Record<string, unknown>;
  };
  worker: {
    metricsPort: number;
    cache: { type: 'emptyDir' | 'hostPath'; hostPath: string; maxSize: string; sizeLimit: string };
    gpu: PoolValues & { gpusPerPod: number };
    cpu: PoolValues & { concurrency: number; backend: 'wasm' | 'cpu' };
  };
  autoscaling: {
    enabled: boolean;
    pool: WorkerPool;
    source: 'redis' | 'prometheus';
    minReplicas: number;
    maxReplicas: number;
    pollingInterval: number;
    cooldownPeriod: number;
    scaleDown: { stabilizationWindowSeconds: number; podsPerPeriod: number; periodSeconds: number };
    prometheus: { query: string };
  };
  monitoring: {
    prometheusUrl: string;
    operator: { enabled: boolean; interval: string; labels: Record<string, string> };
    scrapeConfig: { enabled: boolean; tokenFile: string };
    grafana: {
      enabled: boolean;
      label: string;
      labelValue: string;
      folderAnnotation: string;
      folder: string;
      datasource: boolean;
    };
  };
}

/** The two worker Deployments: on GPU nodes and on CPU nodes. */
export type WorkerPool = 'gpu' | 'cpu';

export interface ImageValues {
  repository: string;
  tag: string;
  pullPolicy: 'Always' | 'IfNotPresent' | 'Never';
}

export interface ResourceValues {
  requests: Record<string, string>;
  limits: Record<string, string>;
}

export interface TolerationValues {
  key?: string;
  operator?: 'Exists' | 'Equal';
  value?: string;
  effect?: 'NoSchedule' | 'PreferNoSchedule' | 'NoExecute';
  tolerationSeconds?: number;
}

/** What the GPU and CPU worker pools have in common. */
export interface PoolValues {
  enabled: boolean;
  replicas: number;
  resources: ResourceValues;
  nodeSelector: Record<string, string>;
  tolerations: TolerationValues[];
  affinity: Record<string, unknown>;
  checkpointSeconds: number;
  terminationGracePeriodSeconds: number;
  preStopSleepSeconds: number;
  priorityClassName: string;
  podAnnotations: Record<string, string>;
}
