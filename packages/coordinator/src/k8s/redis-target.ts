import type { FieldIssue } from '@gantry/shared';
import type { K8sValues } from './values-types.ts';

/** The environment variable the Redis password is read into; REDIS_URL refers to it as `$(REDIS_PASSWORD)`. */
export const REDIS_PASSWORD_ENV = 'REDIS_PASSWORD';
/** The ACL user for KEDA (`usernameFromEnv`), set on the workers when the URL names one. */
export const REDIS_USERNAME_ENV = 'REDIS_USERNAME';

/** Where Gantry's Redis is, for Gantry's pods (REDIS_URL) and for KEDA (host:port addresses). */
export interface RedisTarget {
  /**
   * REDIS_URL of Gantry's containers: one URL, or a Redis Cluster's node URLs comma-separated; where the
   * password goes it holds `$(REDIS_PASSWORD)`, which Kubernetes expands from the container's own env.
   */
  url: string;
  /** `host:port` of each node. */
  addresses: string[];
  cluster: boolean;
  tls: boolean;
  /** The logical database (never on a cluster). */
  database: number;
  username?: string;
}

/** The DNS name of the rendered Redis' Service, resolvable from any namespace (KEDA's included). */
export function internalRedisHost(v: K8sValues): string {
  return `${v.name}-redis.${v.namespace}.svc.${v.clusterDomain}`;
}

/**
 * Redis as the values describe it: the rendered StatefulSet, or `redis.external.url` parsed (each node
 * URL `redis[s]://[user@]host[:port][/db]`, no password).
 * Returns issues naming `redis.external.url` (or `redis.external.cluster`) instead of a target when the
 * URL is not that.
 */
export function redisTarget(v: K8sValues): RedisTarget | FieldIssue[] {
  const auth = v.redis.auth.enabled;
  if (v.redis.mode === 'internal') {
    const host = internalRedisHost(v);
    return {
      url: `redis://${auth ? `:$(${REDIS_PASSWORD_ENV})@` : ''}${host}:6379`,
      addresses: [`${host}:6379`],
      cluster: false,
      tls: false,
      database: 0,
    };
  }
  const path = 'redis.external.url';
  const issue = (message: string): FieldIssue[] => [{ path, message }];
  const raw = v.redis.external.url.trim();
  if (raw === '') return issue('is required when redis.mode is external');
  const parts = raw.split(',').map((s) => s.trim());
  if (parts.length > 1 && !v.redis.external.cluster) {
    return issue('lists several URLs: that is a Redis Cluster, set redis.external.cluster: true');
  }
  const nodes: { scheme: string; user: string; host: string; port: string; db: number }[] = [];
  for (const part of parts) {
    let u: URL;
    try {
      u = new URL(part);
    } catch {
      return issue(`'${part.replace(/:[^:@/]*@/, ':***@')}' is not a URL`);
    }
    if (u.protocol !== 'redis:' && u.protocol !== 'rediss:')
      return issue('must be redis:// or rediss:// URLs');
    if (u.password !== '') {
      return issue(
        `must not carry the password: put it in the Secret redis.auth.secretName (${v.redis.auth.secretName})`,
      );
    }
    if (u.hostname === '') return issue(`'${part}' names no host`);
    const dbText = u.pathname.replace(/^\//, '');
    if (dbText !== '' && !/^[0-9]+$/.test(dbText)) return issue(`'${part}': the path is a database number`);
    nodes.push({
      scheme: u.protocol,
      user: decodeURIComponent(u.username),
      host: u.hostname,
      port: u.port === '' ? '6379' : u.port,
      db: dbText === '' ? 0 : Number(dbText),
    });
  }
  const first = nodes[0]!;
  if (nodes.some((n) => n.scheme !== first.scheme)) return issue('mixes redis:// and rediss:// nodes');
  if (nodes.some((n) => n.user !== first.user)) return issue('names different users on different nodes');
  if (v.redis.external.cluster && nodes.some((n) => n.db !== 0)) {
    return issue('names a database: a Redis Cluster has only database 0');
  }
  const userinfo = (() => {
    const user = first.user === '' ? '' : encodeURIComponent(first.user);
    if (auth) return `${user}:$(${REDIS_PASSWORD_ENV})@`;
    return user === '' ? '' : `${user}@`;
  })();
  const url = nodes
    .map((n) => `${n.scheme}//${userinfo}${n.host}:${n.port}${n.db !== 0 ? `/${n.db}` : ''}`)
    .join(',');
  return {
    url,
    addresses: nodes.map((n) => `${n.host}:${n.port}`),
    cluster: v.redis.external.cluster,
    tls: first.scheme === 'rediss:',
    database: first.db,
    ...(first.user !== '' ? { username: first.user } : {}),
  };
}
