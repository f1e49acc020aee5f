import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FieldIssue } from '@gantry/shared';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { parseQuantity } from './quantity.ts';
import { redisTarget } from './redis-target.ts';
import { ValuesError } from './values-error.ts';
import { applySet, isValuesObject, mergeValues, type ValuesObject } from './values-merge.ts';
import type { K8sValues, PoolValues, WorkerPool } from './values-types.ts';

/** infra/k8s of this checkout: the defaults file, the schema and the examples. */
export const K8S_INFRA_DIR = join(import.meta.dirname, '..', '..', '..', '..', 'infra', 'k8s');

/** One `--set` or `--set-string` argument, in command-line order. */
export interface SetArgument {
  assignment: string;
  /** `--set-string`: the value stays text (`image.tag=1.10`). */
  asString: boolean;
}

/** Where values come from, lowest precedence first (Helm's order): defaults, `-f` files, `--set`s. */
export interface ValuesSources {
  /** `-f` files, each laid over the ones before. */
  files?: readonly string[];
  sets?: readonly SetArgument[];
  /** The defaults file. @default infra/k8s/values.yaml */
  defaultsFile?: string;
  /** @default infra/k8s/values.schema.json */
  schemaFile?: string;
}

/** A values file's mapping; an empty file is an empty mapping. */
function readValuesFile(file: string): ValuesObject {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ValuesError([{ path: file, message: `cannot read: ${(err as NodeJS.ErrnoException).code}` }]);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new ValuesError([{ path: file, message: `not YAML: ${(err as Error).message.split('\n')[0]}` }]);
  }
  if (doc === null || doc === undefined) return {};
  if (!isValuesObject(doc)) throw new ValuesError([{ path: file, message: 'must be a mapping of values' }]);
  return doc;
}

/**
 * The values `sources` describe: the defaults, each file laid over them, then each `--set`, validated
 * against the schema and across fields.
 * @throws ValuesError listing every problem, each naming its field (`worker.gpu.replicas`), argument or file.
 */
export function loadValues(sources: ValuesSources = {}): K8sValues {
  let merged = readValuesFile(sources.defaultsFile ?? join(K8S_INFRA_DIR, 'values.yaml'));
  for (const f of sources.files ?? []) merged = mergeValues(merged, readValuesFile(f)) as ValuesObject;
  for (const s of sources.sets ?? []) applySet(merged, s.assignment, s.asString);
  const schemaFile = sources.schemaFile ?? join(K8S_INFRA_DIR, 'values.schema.json');
  return validateValues(merged, readFileSync(schemaFile, 'utf8'));
}

/** Compiled validators by schema text: compiling takes a good part of a render. */
const validators = new Map<string, ValidateFunction>();

function validatorOf(schemaText: string): ValidateFunction {
  let validate = validators.get(schemaText);
  if (!validate) {
    const ajv = new Ajv({
      allErrors: true,
      verbose: true,
      strict: true,
      allowMatchingProperties: true,
      allowUnionTypes: true,
    });
    validate = ajv.compile(JSON.parse(schemaText) as object);
    validators.set(schemaText, validate);
  }
  return validate;
}

/** `a.b[0].c` from ajv's `/a/b/0/c`. */
function dotted(pointer: string): string {
  return pointer
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((acc, p) => (/^[0-9]+$/.test(p) ? `${acc}[${p}]` : acc === '' ? p : `${acc}.${p}`), '');
}

/** One schema error as a field issue: the field it is about and what it must be. */
function issueOf(e: ErrorObject): FieldIssue {
  const at = dotted(e.instancePath);
  const join2 = (key: string) => (at === '' ? key : `${at}.${key}`);
  const params = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'required':
      return { path: join2(String(params.missingProperty)), message: 'is required' };
    case 'additionalProperties':
      return { path: join2(String(params.additionalProperty)), message: 'is not a known field' };
    case 'enum':
      return { path: at, message: `must be one of ${(params.allowedValues as unknown[]).join(', ')}` };
    case 'pattern': {
      const description = (e.parentSchema as { description?: string } | undefined)?.description;
      return { path: at, message: description ? `must be ${description}` : (e.message ?? 'is invalid') };
    }
    default:
      return { path: at, message: e.message ?? 'is invalid' };
  }
}

/**
 * `raw` checked against the JSON Schema `schemaText` (every field, every problem) and then across fields.
 * @throws ValuesError naming each field.
 */
export function validateValues(raw: unknown, schemaText: string): K8sValues {
  const validate = validatorOf(schemaText);
  if (!validate(raw)) {
    const seen = new Set<string>();
    const issues = (validate.errors ?? []).map(issueOf).filter((i) => {
      const key = `${i.path}\0${i.message}`;
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    });
    throw new ValuesError(issues);
  }
  const values = raw as unknown as K8sValues;
  const issues = crossFieldIssues(values);
  if (issues.length > 0) throw new ValuesError(issues);
  return values;
}

/** What the schema cannot say: fields that must agree with each other. */
export function crossFieldIssues(v: K8sValues): FieldIssue[] {
  const issues: FieldIssue[] = [];
  const add = (path: string, message: string) => issues.push({ path, message });
  const a = v.autoscaling;
  if (a.enabled && !v.worker[a.pool].enabled) {
    add('autoscaling.pool', `names the ${a.pool} pool, which is off (worker.${a.pool}.enabled: false)`);
  }
  if (a.minReplicas > a.maxReplicas)
    add('autoscaling.minReplicas', `must be <= autoscaling.maxReplicas (${a.maxReplicas})`);
  for (const pool of ['gpu', 'cpu'] as const satisfies readonly WorkerPool[]) {
    const p: PoolValues = v.worker[pool];
    const need = p.preStopSleepSeconds + p.checkpointSeconds;
    if (p.terminationGracePeriodSeconds < need) {
      add(
        `worker.${pool}.terminationGracePeriodSeconds`,
        `must hold the preStop sleep and a checkpoint: at least ${p.preStopSleepSeconds} + ${p.checkpointSeconds} = ${need}`,
      );
    }
  }
  const c = v.coordinator;
  if (c.preStopSleepSeconds >= c.terminationGracePeriodSeconds) {
    add(
      'coordinator.preStopSleepSeconds',
      `must be < coordinator.terminationGracePeriodSeconds (${c.terminationGracePeriodSeconds})`,
    );
  }
  const cache = v.worker.cache;
  const maxBytes = parseQuantity(cache.maxSize) ?? 0;
  if (maxBytes < 2 ** 20) add('worker.cache.maxSize', 'must be at least 1Mi');
  if (cache.type === 'emptyDir' && maxBytes > (parseQuantity(cache.sizeLimit) ?? 0)) {
    add(
      'worker.cache.maxSize',
      `must be <= worker.cache.sizeLimit (${cache.sizeLimit}): the kubelet evicts a pod past it`,
    );
  }

  const target = redisTarget(v);
  if (Array.isArray(target)) issues.push(...target);
  else if (target.cluster && !/\{[^}]+\}/.test(v.gantry.prefix)) {
    add(
      'gantry.prefix',
      'must hold a {hash tag} on a Redis Cluster (e.g. {gantry}), or BullMQ fails with CROSSSLOT',
    );
  }
  const ext = v.redis.external;
  if (v.redis.mode === 'internal') {
    if (ext.url !== '') add('redis.external.url', 'is set, but redis.mode is internal');
    if (ext.cluster) add('redis.external.cluster', 'is true, but redis.mode is internal (a single Redis)');
  }
  if (ext.caSecret.name !== '' && !(v.redis.mode === 'external' && ext.url.trim().startsWith('rediss://'))) {
    add('redis.external.caSecret.name', 'is for rediss:// (TLS) external URLs only');
  }
  if (!v.redis.auth.enabled && v.redis.auth.password !== '') {
    add('redis.auth.password', 'is set, but redis.auth.enabled is false');
  }

  const s3 = v.s3;
  if ((s3.accessKeyId === '') !== (s3.secretAccessKey === '')) {
    add(s3.accessKeyId === '' ? 's3.accessKeyId' : 's3.secretAccessKey', 'is needed with the other key');
  }
  if (s3.accessKeyId !== '' && s3.secretName === '')
    add('s3.secretName', 'must name the Secret the keys go into');

  const tokens = v.auth.tokens;
  if (tokens.length > 0) {
    if (!tokens.some((t) => t.role === 'read')) {
      add('auth.tokens', 'needs a read token (Prometheus scrapes with it, into auth.readToken.secretName)');
    }
    const names = new Set<string>();
    tokens.forEach((t, i) => {
      if (names.has(t.name)) add(`auth.tokens[${i}].name`, `'${t.name}' is used twice`);
      names.add(t.name);
    });
  }
  return issues;
}
