import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { findOnPath, stopChild } from '../../packages/coordinator/src/local-stack/process-util.ts';
import { selfSignedCertificate } from './certificate.ts';
import { waitFor } from './wait-for.ts';

/** Options of {@link startRedisCluster}. */
export interface StartRedisClusterOptions {
  /** @default 3 */
  masters?: number;
  /** TLS only, for clients and the cluster bus, with a self-signed certificate for 127.0.0.1 (openssl). */
  tls?: boolean;
  /** `requirepass` (and `masterauth`) of every node. */
  password?: string;
}

/** A Redis Cluster of masters on loopback, owned by this process. */
export interface LocalRedisCluster {
  /**
   * `redis://127.0.0.1:<port>` of each master (`rediss://:<password>@...` with TLS and a password), in slot
   * order (the first serves slot 0).
   */
  readonly urls: string[];
  /** REDIS_URL for Gantry: the masters' URLs, comma-separated. */
  readonly redisUrl: string;
  /** With TLS: the certificate's file, which is its own CA (GANTRY_REDIS_CA_FILE). */
  readonly caFile?: string;
  /** A new client of master `i` alone (not a cluster client): for what a test reads or sends per node. */
  node(i: number): Redis;
  /** Stops every server and removes their files. Idempotent. */
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';
const SLOTS = 16_384;
/** A node's cluster bus listens on its port + 10000. */
const BUS_OFFSET = 10_000;
const START_TIMEOUT_MS = 10_000;
const FORM_TIMEOUT_MS = 20_000;

/**
 * Starts `masters` redis-servers with cluster mode on (no persistence, free ports on 127.0.0.1), gives each
 * an equal range of the 16384 slots, joins them with CLUSTER MEET, and resolves once every node reports
 * `cluster_state:ok` and knows all the masters. With `tls` the nodes have no plain port at all, and with
 * `password` they answer nobody without it. Needs Debian's redis-server 7.0+ (CLUSTER ADDSLOTSRANGE).
 */
export async function startRedisCluster(opts: StartRedisClusterOptions = {}): Promise<LocalRedisCluster> {
  const masters = opts.masters ?? 3;
  const bin = await findOnPath('redis-server');
  if (bin === undefined) throw new Error('redis-server was not found on PATH (apt-get install redis-server)');
  const dir = await mkdtemp(join(tmpdir(), 'gantry-redis-cluster-'));
  const cert = opts.tls ? { certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem') } : undefined;
  let ca: string | undefined;
  const connect = (port: number) =>
    new Redis({
      host: HOST,
      port,
      maxRetriesPerRequest: 1,
      ...(opts.password ? { password: opts.password } : {}),
      ...(ca !== undefined ? { tls: { ca } } : {}),
    });
  const nodes: StartedNode[] = [];
  const admins: Redis[] = [];
  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      for (const a of admins) a.disconnect();
      await Promise.all(nodes.map((n) => stopChild(n.child, n.exited, 5000)));
      await rm(dir, { recursive: true, force: true });
    })();
    return stopped;
  };
  try {
    if (cert) {
      await selfSignedCertificate(dir);
      ca = await readFile(cert.certFile, 'utf8');
    }
    for (let i = 0; i < masters; i++)
      nodes.push(await startNode(bin, dir, nodes, serverArgs(cert, opts.password)));
    for (const n of nodes) admins.push(connect(n.port));
    const per = Math.ceil(SLOTS / masters);
    await Promise.all(
      admins.map((a, i) => a.call('CLUSTER', 'ADDSLOTSRANGE', i * per, Math.min(SLOTS, (i + 1) * per) - 1)),
    );
    for (const n of nodes.slice(1)) await admins[0]!.call('CLUSTER', 'MEET', HOST, n.port);
    await waitFor(
      `${masters} masters to form a cluster`,
      async () => {
        const infos = await Promise.all(admins.map((a) => a.call('CLUSTER', 'INFO') as Promise<string>));
        const formed = infos.every(
          (info) =>
            /cluster_state:ok/.test(info) &&
            new RegExp(`cluster_known_nodes:${masters}\\b`).test(info) &&
            new RegExp(`cluster_size:${masters}\\b`).test(info),
        );
        return formed ? true : undefined;
      },
      FORM_TIMEOUT_MS,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  const auth = opts.password ? `:${encodeURIComponent(opts.password)}@` : '';
  const urls = nodes.map((n) => `${opts.tls ? 'rediss' : 'redis'}://${auth}${HOST}:${n.port}`);
  return {
    urls,
    redisUrl: urls.join(','),
    ...(cert ? { caFile: cert.certFile } : {}),
    node: (i) => connect(nodes[i]!.port),
    stop,
  };
}

interface StartedNode {
  port: number;
  child: ChildProcess;
  exited: Promise<void>;
}

interface CertificateFiles {
  certFile: string;
  keyFile: string;
}

/** redis-server arguments for TLS (with `tls`'s files) and a password. */
function serverArgs(
  tls: CertificateFiles | undefined,
  password: string | undefined,
): (port: number) => string[] {
  return (port) => [
    ...(tls
      ? [
          '--port',
          '0',
          '--tls-port',
          String(port),
          '--tls-cluster',
          'yes',
          '--tls-cert-file',
          tls.certFile,
          '--tls-key-file',
          tls.keyFile,
          '--tls-ca-cert-file',
          tls.certFile,
          '--tls-auth-clients',
          'no',
        ]
      : ['--port', String(port)]),
    ...(password ? ['--requirepass', password, '--masterauth', password] : []),
  ];
}

/** Starts one cluster-mode server on a port whose bus port is free too; retries when another process wins a port. */
async function startNode(
  bin: string,
  dir: string,
  others: StartedNode[],
  args: (port: number) => string[],
): Promise<StartedNode> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePortWithBus(others.map((o) => o.port));
    const child = spawn(
      bin,
      [
        ...args(port),
        '--bind',
        HOST,
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        join(dir, `nodes-${port}.conf`),
        '--dir',
        dir,
        '--save',
        '',
        '--appendonly',
        'no',
        '--maxmemory-policy',
        'noeviction',
        '--daemonize',
        'no',
        '--logfile',
        '',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    process.once('exit', () => child.kill('SIGKILL'));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    let log = '';
    const collect = (chunk: Buffer) => {
      log = (log + chunk.toString('utf8')).slice(-4000);
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    let gone = false;
    void exited.then(() => {
      gone = true;
    });
    const ready = await waitFor(
      `redis-server on port ${port} to start`,
      async () => (/ready to accept connections/i.test(log) ? true : gone ? false : undefined),
      START_TIMEOUT_MS,
    ).catch(() => false);
    if (ready) return { port, child, exited };
    await stopChild(child, exited, 1000);
    if (!/address already in use/i.test(log) || attempt >= 5)
      throw new Error(`redis-server on port ${port} did not start:\n${log.trim()}`);
  }
}

/** A port below 55536 that is free on loopback, with its bus port (+10000) free too. */
async function freePortWithBus(taken: number[]): Promise<number> {
  for (;;) {
    const port = await listenOnce(0);
    if (port + BUS_OFFSET > 65_535 || taken.includes(port) || taken.includes(port + BUS_OFFSET)) continue;
    if (
      await listenOnce(port + BUS_OFFSET).then(
        () => true,
        () => false,
      )
    )
      return port;
  }
}

/** Binds `port` on loopback (0: any) and releases it; the port bound. */
function listenOnce(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, HOST, () => {
      const address = server.address();
      const bound = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(bound));
    });
  });
}
