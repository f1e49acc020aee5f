import type { IScaledObject, ITriggerAuthentication } from '@kubernetes-models/keda/keda.sh/v1alpha1';
import type {
  IPodMonitor,
  IPrometheusRule,
  IServiceMonitor,
} from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import type { IDeployment, IStatefulSet } from 'kubernetes-models/apps/v1';
import type { IPodDisruptionBudget } from 'kubernetes-models/policy/v1';
import type { IConfigMap, ISecret, IService, IServiceAccount } from 'kubernetes-models/v1';
import type { K8sValues } from './values-types.ts';

/**
 * Every kind of object the renderer writes, typed by the Kubernetes, KEDA and prometheus-operator
 * schemas' own TypeScript models (types only: nothing of them runs here; test/ validates against them).
 */
export type K8sObject =
  | IConfigMap
  | ISecret
  | IService
  | IServiceAccount
  | IDeployment
  | IStatefulSet
  | IPodDisruptionBudget
  | IScaledObject
  | ITriggerAuthentication
  | IPodMonitor
  | IServiceMonitor
  | IPrometheusRule;

/** The parts of Gantry a pod can be, as its app.kubernetes.io/component label says. */
export type Component = 'coordinator' | 'worker' | 'redis' | 'monitoring';

/** Labels that pick a component's pods (Service and Deployment selectors, monitors). */
export function selectorLabels(v: K8sValues, component: Component, pool?: string): Record<string, string> {
  return {
    'app.kubernetes.io/name': 'gantry',
    'app.kubernetes.io/instance': v.name,
    'app.kubernetes.io/component': component,
    ...(pool ? { 'gantry.dev/pool': pool } : {}),
  };
}

/** Labels of every object: the selector labels (no component for what all parts share) and who wrote it. */
export function labels(v: K8sValues, component?: Component, pool?: string): Record<string, string> {
  const base = component
    ? selectorLabels(v, component, pool)
    : { 'app.kubernetes.io/name': 'gantry', 'app.kubernetes.io/instance': v.name };
  return {
    ...base,
    'app.kubernetes.io/part-of': 'gantry',
    'app.kubernetes.io/managed-by': 'gantry-k8s-render',
  };
}

/** What an object's metadata may add to its name and labels. */
export interface MetaExtra {
  component?: Component;
  pool?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** metadata of an object named `name` in the values' namespace. */
export function namedMeta(v: K8sValues, name: string, extra: MetaExtra = {}) {
  const annotations = extra.annotations ?? {};
  return {
    name,
    namespace: v.namespace,
    labels: { ...labels(v, extra.component, extra.pool), ...(extra.labels ?? {}) },
    ...(Object.keys(annotations).length > 0 ? { annotations } : {}),
  };
}

/** metadata of an object named `<v.name>-<suffix>` that belongs to `component`. */
export function meta(
  v: K8sValues,
  suffix: string,
  component: Component,
  extra: Omit<MetaExtra, 'component'> = {},
) {
  return namedMeta(v, `${v.name}-${suffix}`, { ...extra, component });
}

/** `repository:tag` of an image value. */
export function imageRef(image: { repository: string; tag: string }): string {
  return `${image.repository}:${image.tag}`;
}
