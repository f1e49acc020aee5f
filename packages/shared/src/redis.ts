import { Cluster, type ClusterOptions, Redis, type RedisOptions } from 'ioredis';
import { redactUrl } from './auth.ts';
import type { FieldIssue } from './errors.ts';

/**
 * A client of the deployment's Redis: one server, or a Redis Cluster (README, "Configuration"). Both speak
 * the commands, scripts, MULTI and pub/sub Gantry and BullMQ use; in a cluster every key of one script or
 * MULTI must hash to one slot, which the deployment prefix's hash tag (`{gantry}`) guarantees.
 */
export type RedisClient = Redis | Cluster;

/** One Redis node's address. */
export interface RedisNode {
  host: string;
  port: number;
}

/** How every Redis client of a process connects: REDIS_URL, GANTRY_REDIS_CLUSTER and GANTRY_REDIS_CA_FILE, parsed. */
export interface RedisConnectionConfig {
  /** The server, or the cluster nodes the client starts from (it discovers the others from them). */
  nodes: RedisNode[];
  /** A Redis Cluster: REDIS_URL lists several nodes, or GANTRY_REDIS_CLUSTER=true. */
  cluster: boolean;
  /**
   * Options of every connection (each node's, in a cluster): credentials and db from the URL, TLS
   * (`rediss://` or a CA file), and `maxRetriesPerRequest: null`, which BullMQ's workers need. Never logged.
   */
  options: RedisOptions;
}

/** What {@link parseRedisConnection} reads (the environment's variables, validated as strings). */
export interface RedisConnectionEnv {
  /** REDIS_URL: one URL, or a comma-separated list of a cluster's nodes. */
  url: string;
  /** GANTRY_REDIS_CLUSTER, when set. */
  cluster?: boolean;
  /** The text of GANTRY_REDIS_CA_FILE, when set. */
  ca?: string;
}

const DEFAULT_PORT = 6379;

/**
 * Parses REDIS_URL (with GANTRY_REDIS_CLUSTER and the CA) into the form {@link createRedis} takes; or the
 * problems, each naming its variable. A list's nodes share one scheme and one set of credentials (given
 * on any of them); a cluster has db 0 only.
 */
export function parseRedisConnection(env: RedisConnectionEnv): RedisConnectionConfig | FieldIssue[] {
  const issues: FieldIssue[] = [];
  const bad = (message: string) => issues.push({ path: 'REDIS_URL', message });
  const entries = env.url.split(',').map((s) => s.trim());
  if (entries.some((s) => s === '')) bad('an empty entry in the list (write node URLs separated by commas)');
  const urls: URL[] = [];
  for (const entry of entries.filter((s) => s !== '')) {
    let u: URL | undefined;
    try {
      u = new URL(entry);
    } catch {
      u = undefined;
    }
    if (u === undefined || (u.protocol !== 'redis:' && u.protocol !== 'rediss:')) {
      bad(`must be a redis:// or rediss:// (TLS) URL, or a list of them; not ${redactUrl(entry)}`);
    } else if (u.hostname === '') bad(`${redactUrl(entry)} names no host`);
    else if (u.search !== '' || u.hash !== '') bad(`${redactUrl(entry)}: query parameters are not read`);
    else urls.push(u);
  }
  const several = entries.length > 1;
  if (several && env.cluster === false) {
    issues.push({
      path: 'GANTRY_REDIS_CLUSTER',
      message:
        'is false, but REDIS_URL lists several nodes (a list is a Redis Cluster; give one URL otherwise)',
    });
  }
  const cluster = several || env.cluster === true;
  const schemes = new Set(urls.map((u) => u.protocol));
  if (schemes.size > 1) bad('mixes redis:// and rediss://; the nodes of a cluster all use TLS or none do');
  const credentials = new Set(
    urls.filter((u) => u.username !== '' || u.password !== '').map((u) => `${u.username}\n${u.password}`),
  );
  if (credentials.size > 1) bad('its nodes carry different credentials; a cluster has one user and password');
  const dbs = new Set(urls.map((u) => u.pathname.replace(/^\//, '')).filter((p) => p !== ''));
  const db = [...dbs][0];
  if (dbs.size > 1) bad('its nodes name different databases');
  else if (db !== undefined && !/^(0|[1-9][0-9]*)$/.test(db)) bad(`'/${db}' is not a database number`);
  else if (cluster && db !== undefined && db !== '0') bad(`a Redis Cluster has database 0 only, not /${db}`);
  if (issues.length > 0) return issues;

  const [user, password] = ([...credentials][0] ?? '\n').split('\n').map(decodeURIComponent);
  const tls = schemes.has('rediss:') || env.ca !== undefined;
  const options: RedisOptions = {
    maxRetriesPerRequest: null,
    ...(user ? { username: user } : {}),
    ...(password ? { password } : {}),
    ...(db !== undefined && db !== '0' ? { db: Number(db) } : {}),
    ...(tls ? { tls: env.ca !== undefined ? { ca: env.ca } : {} } : {}),
  };
  const nodes = urls.map((u) => ({
    // URL keeps the brackets of an IPv6 address; sockets take it without.
    host: u.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: u.port === '' ? DEFAULT_PORT : Number(u.port),
  }));
  return { nodes, cluster, options };
}

/**
 * A new client of the deployment's Redis as `config.redis` describes it: a `Redis` for one server, a
 * `Cluster` for a cluster. `extra` adds or overrides connection options (every node's, in a cluster;
 * `lazyConnect` and `enableOfflineQueue` also apply to the cluster client itself). A cluster client
 * refreshes its slot map on MOVED, retries its connection for as long as it takes (as a single client does)
 * and is ready once the cluster reports `cluster_state:ok`.
 */
export function createRedis(config: { redis: RedisConnectionConfig }, extra: RedisOptions = {}): RedisClient {
  const { nodes, cluster, options } = config.redis;
  const redisOptions: RedisOptions = { ...options, ...extra };
  if (!cluster) {
    const node = nodes[0];
    if (!node) throw new Error('createRedis: config.redis names no node');
    return new Redis({ ...redisOptions, host: node.host, port: node.port });
  }
  const clusterOptions: ClusterOptions = {
    redisOptions,
    enableReadyCheck: true,
    // Up to 2 s between attempts, and never giving up: BullMQ's workers wait out an outage.
    clusterRetryStrategy: (times) => Math.min(100 * times, 2000),
    ...(extra.lazyConnect !== undefined ? { lazyConnect: extra.lazyConnect } : {}),
    ...(extra.enableOfflineQueue !== undefined ? { enableOfflineQueue: extra.enableOfflineQueue } : {}),
    // With TLS, connect to each node by the name it was given, which its certificate carries (managed
    // clusters announce names behind which the addresses change).
    ...(redisOptions.tls ? { dnsLookup: (address, done) => done(null, address) } : {}),
  };
  return new Cluster(nodes, clusterOptions);
}

/** A second client like `client` (same nodes and options), e.g. for a subscriber or a BullMQ queue. */
export function duplicateRedis(client: RedisClient): RedisClient {
  return client.duplicate();
}
