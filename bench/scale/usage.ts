/**
 * CPU and memory of everything on the machine during a measurement window: the coordinator and the
 * worker hosts (/proc), Redis (its own INFO), this process (s3rver runs in it), and the machine as a whole
 * (other work on a shared machine shows there).
 */
import { loadavg } from 'node:os';
import { cpuSeconds, infoNumber, machineCpu, rssBytes } from './measure.ts';
import type { SweepReader } from './sweep-reads.ts';

/** Counters at one moment; {@link usageBetween} turns two of them into rates. */
export interface UsageSnapshot {
  t: number;
  coordinatorCpu: number;
  coordinatorRss: number;
  hostsCpu: number;
  redisCpu: number;
  redisCommands: number;
  redisMemory: number;
  redisClients: number;
  benchCpu: number;
  machineBusy: number;
}

/** A window's rates and levels (cores = CPU seconds per wall second). */
export interface Usage {
  coordinator_cores: number;
  coordinator_rss_mb: number;
  coordinator_rss_mb_max: number;
  hosts_cores: number;
  redis_cores: number;
  redis_commands_per_s: number;
  redis_used_memory_mb: number;
  redis_used_memory_mb_max: number;
  redis_clients: number;
  /** The bench process: s3rver, the API requests and these reads. */
  bench_cores: number;
  machine_busy_cores: number;
  /** The machine's 1-minute load average at the window's end. */
  load_average: number;
}

export async function usageNow(o: {
  coordinator: number;
  hosts: readonly number[];
  reader: SweepReader;
}): Promise<UsageSnapshot> {
  const [coordinatorCpu, coordinatorRss, hosts, info, machine] = await Promise.all([
    cpuSeconds(o.coordinator),
    rssBytes(o.coordinator),
    Promise.all(o.hosts.map((p) => cpuSeconds(p))),
    o.reader.info(),
    machineCpu(),
  ]);
  const bench = process.cpuUsage();
  return {
    t: performance.now(),
    coordinatorCpu,
    coordinatorRss,
    hostsCpu: hosts.reduce((a, b) => a + b, 0),
    redisCpu: infoNumber(info, 'used_cpu_user') + infoNumber(info, 'used_cpu_sys'),
    redisCommands: infoNumber(info, 'total_commands_processed'),
    redisMemory: infoNumber(info, 'used_memory'),
    redisClients: infoNumber(info, 'connected_clients'),
    benchCpu: (bench.user + bench.system) / 1e6,
    machineBusy: machine.busy,
  };
}

const MB = 1024 * 1024;

/** Rates between two snapshots; `peaks` are the largest levels sampled between them. */
export function usageBetween(
  a: UsageSnapshot,
  b: UsageSnapshot,
  peaks: { rss: number; redisMemory: number },
): Usage {
  const s = (b.t - a.t) / 1000;
  return {
    coordinator_cores: (b.coordinatorCpu - a.coordinatorCpu) / s,
    coordinator_rss_mb: b.coordinatorRss / MB,
    coordinator_rss_mb_max: Math.max(peaks.rss, a.coordinatorRss, b.coordinatorRss) / MB,
    hosts_cores: (b.hostsCpu - a.hostsCpu) / s,
    redis_cores: (b.redisCpu - a.redisCpu) / s,
    redis_commands_per_s: (b.redisCommands - a.redisCommands) / s,
    redis_used_memory_mb: b.redisMemory / MB,
    redis_used_memory_mb_max: Math.max(peaks.redisMemory, a.redisMemory, b.redisMemory) / MB,
    redis_clients: b.redisClients,
    bench_cores: (b.benchCpu - a.benchCpu) / s,
    machine_busy_cores: (b.machineBusy - a.machineBusy) / s,
    load_average: loadavg()[0]!,
  };
}
