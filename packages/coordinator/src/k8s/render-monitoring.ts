import type {
  IPodMonitor,
  IPrometheusRule,
  IServiceMonitor,
} from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import type { IConfigMap } from 'kubernetes-models/v1';
import { parse as parseYaml, stringify } from 'yaml';
import type { InfraFiles } from './infra-files.ts';
import { type K8sObject, meta, selectorLabels } from './objects.ts';
import type { K8sValues } from './values-types.ts';

/** The `job` labels Gantry's alert rules and dashboards expect (infra/prometheus/prometheus.yml's jobs). */
export const COORDINATOR_JOB = 'gantry-coordinator';
export const WORKERS_JOB = 'gantry-workers';
/** The key of the plain-Prometheus scrape jobs in their ConfigMap. */
export const SCRAPE_CONFIG_KEY = 'gantry-scrape.yml';

/**
 * How Prometheus finds and labels Gantry: the operator's monitors (ServiceMonitor for the coordinators,
 * PodMonitor for the workers, the rules as a PrometheusRule) and/or ConfigMaps for a plain Prometheus
 * (kubernetes_sd scrape jobs, the rule files); the dashboards as ConfigMaps for Grafana's sidecar.
 */
export function renderMonitoring(v: K8sValues, files: InfraFiles): K8sObject[] {
  const m = v.monitoring;
  const objects: K8sObject[] = [];
  const readToken = { name: v.auth.readToken.secretName, key: v.auth.readToken.key };
  if (m.operator.enabled) {
    const extra = { labels: m.operator.labels };
    const serviceMonitor: IServiceMonitor = {
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'ServiceMonitor',
      metadata: meta(v, 'coordinator', 'monitoring', extra),
      spec: {
        selector: { matchLabels: selectorLabels(v, 'coordinator') },
        namespaceSelector: { matchNames: [v.namespace] },
        endpoints: [
          {
            port: 'http',
            path: '/metrics',
            interval: m.operator.interval,
            authorization: { type: 'Bearer', credentials: readToken },
            // The operator names the job after the Service; the rules expect gantry-coordinator.
            relabelings: [{ targetLabel: 'job', replacement: COORDINATOR_JOB }],
          },
        ],
      },
    };
    const podMonitor: IPodMonitor = {
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'PodMonitor',
      metadata: meta(v, 'workers', 'monitoring', extra),
      spec: {
        selector: { matchLabels: { ...selectorLabels(v, 'worker') } },
        namespaceSelector: { matchNames: [v.namespace] },
        podMetricsEndpoints: [
          {
            port: 'metrics',
            path: '/metrics',
            interval: m.operator.interval,
            // gantry_worker_info carries its own `worker` label, equal to the one set below.
            honorLabels: true,
            authorization: { type: 'Bearer', credentials: readToken },
            relabelings: [
              { targetLabel: 'job', replacement: WORKERS_JOB },
              { sourceLabels: ['__meta_kubernetes_pod_name'], targetLabel: 'worker' },
            ],
          },
        ],
      },
    };
    const rule: IPrometheusRule = {
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'PrometheusRule',
      metadata: meta(v, 'alerts', 'monitoring', extra),
      spec: {
        groups: files.rules.flatMap((f) => (parseYaml(f.text) as { groups: never[] }).groups),
      },
    };
    objects.push(serviceMonitor, podMonitor, rule);
  }
  if (m.scrapeConfig.enabled) {
    objects.push(
      configMap(v, 'prometheus-scrape', { [SCRAPE_CONFIG_KEY]: scrapeConfigText(v) }),
      configMap(v, 'prometheus-rules', Object.fromEntries(files.rules.map((f) => [f.file, f.text]))),
    );
  }
  if (m.grafana.enabled) {
    const g = m.grafana;
    for (const d of files.dashboards) {
      objects.push(
        configMap(
          v,
          `dashboard-${d.file.replace(/\.json$/, '')}`,
          { [d.file]: d.text },
          {
            labels: { [g.label]: g.labelValue },
            annotations: { [g.folderAnnotation]: g.folder },
          },
        ),
      );
    }
    if (g.datasource) {
      objects.push(
        configMap(
          v,
          'grafana-datasource',
          { 'gantry-prometheus.yaml': datasourceText(v) },
          {
            labels: { grafana_datasource: '1' },
          },
        ),
      );
    }
  }
  return objects;
}

function configMap(
  v: K8sValues,
  suffix: string,
  data: Record<string, string>,
  extra: { labels?: Record<string, string>; annotations?: Record<string, string> } = {},
): IConfigMap {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: meta(v, suffix, 'monitoring', extra), data };
}

/**
 * Scrape jobs for a Prometheus without the operator: this namespace's Gantry pods found by
 * kubernetes_sd, kept by component and port name, labelled as infra/prometheus/prometheus.yml labels
 * them (job, and `worker` from the pod name), scraped with the read token.
 */
export function scrapeConfigText(v: K8sValues): string {
  const job = (jobName: string, component: 'coordinator' | 'worker', port: string) => ({
    job_name: jobName,
    metrics_path: '/metrics',
    ...(component === 'worker' ? { honor_labels: true } : {}),
    authorization: { type: 'Bearer', credentials_file: v.monitoring.scrapeConfig.tokenFile },
    kubernetes_sd_configs: [
      {
        role: 'pod',
        namespaces: { names: [v.namespace] },
        selectors: [
          {
            role: 'pod',
            label: `app.kubernetes.io/instance=${v.name},app.kubernetes.io/component=${component}`,
          },
        ],
      },
    ],
    relabel_configs: [
      { source_labels: ['__meta_kubernetes_pod_container_port_name'], regex: port, action: 'keep' },
      { source_labels: ['__meta_kubernetes_pod_phase'], regex: 'Running', action: 'keep' },
      { source_labels: ['__meta_kubernetes_namespace'], target_label: 'namespace' },
      {
        source_labels: ['__meta_kubernetes_pod_name'],
        target_label: component === 'worker' ? 'worker' : 'pod',
      },
    ],
  });
  const header = [
    `# Gantry's scrape jobs for a Prometheus without prometheus-operator (namespace ${v.namespace}).`,
    '# Add them to its prometheus.yml (or load this file with scrape_config_files, Prometheus 2.43+);',
    `# mount Secret ${v.auth.readToken.secretName} so that ${v.monitoring.scrapeConfig.tokenFile} holds the read`,
    `# token, and ConfigMap ${v.name}-prometheus-rules as a rule_files directory. Prometheus needs RBAC to`,
    '# list and watch pods in this namespace.',
  ].join('\n');
  return `${header}\n${stringify({
    scrape_configs: [job(COORDINATOR_JOB, 'coordinator', 'http'), job(WORKERS_JOB, 'worker', 'metrics')],
  })}`;
}

/** The datasource the dashboards name (uid gantry-prometheus), for Grafana's datasource sidecar. */
function datasourceText(v: K8sValues): string {
  return stringify({
    apiVersion: 1,
    datasources: [
      {
        name: 'Gantry Prometheus',
        uid: 'gantry-prometheus',
        type: 'prometheus',
        access: 'proxy',
        url: v.monitoring.prometheusUrl,
        isDefault: false,
        editable: false,
        jsonData: { timeInterval: '15s', httpMethod: 'POST' },
      },
    ],
  });
}
