import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** One file of infra/ carried into a ConfigMap as it is. */
export interface InfraFile {
  /** Its name, the ConfigMap key. */
  file: string;
  text: string;
}

/** The files the monitoring objects carry: Gantry's alert rules and Grafana dashboards. */
export interface InfraFiles {
  /** infra/prometheus/rules/*.yml */
  rules: InfraFile[];
  /** infra/grafana/dashboards/*.json */
  dashboards: InfraFile[];
}

/** infra/ of this checkout. */
export const INFRA_DIR = join(import.meta.dirname, '..', '..', '..', '..', 'infra');

function filesOf(dir: string, ext: string): InfraFile[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith(ext))
    .sort()
    .map((file) => ({ file, text: readFileSync(join(dir, file), 'utf8') }));
}

/** Reads the rules and dashboards under `infraDir` (by name order). */
export function readInfraFiles(infraDir = INFRA_DIR): InfraFiles {
  return {
    rules: filesOf(join(infraDir, 'prometheus', 'rules'), '.yml'),
    dashboards: filesOf(join(infraDir, 'grafana', 'dashboards'), '.json'),
  };
}
