/**
 * What the scale simulation measures, as pure functions of what it read (dispatch latency, percentiles,
 * Redis INFO) and the readers of /proc it takes process CPU and memory from.
 */
import { readdir, readFile, readlink } from 'node:fs/promises';

/** The p-th percentile (0-100) of `xs` by nearest rank; NaN for none. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * s.length);
  return s[Math.min(s.length, Math.max(1, rank)) - 1]!;
}

/** Dispatch latencies of the slots that freed in a window, with how many found no start yet. */
export interface DispatchSamples {
  /** Milliseconds from each slot freeing to the job that took it starting, in the order slots freed. */
  latencies: number[];
  /** Slots freed in the window whose job has not started yet. */
  pending: number;
}

/**
 * Pairs each freed slot with the job that took it. With `slots` trials at most live at once (the sweep's
 * budget.parallel, one per worker), the first `slots` jobs start on free slots, and the (slots + k)-th job
 * to start can only start once k trials have ended: so the k-th end (in time order) is paired with the
 * (slots + k)-th start, and its latency is that start minus that end. Ends are trials' `endedAt`, starts
 * their jobs' `processedOn` (or trials' `startedAt`); a sample is taken for each end in [from, to]. The
 * last `slots` ends of a sweep of `jobs` trials free slots that no job is left to take: no sample.
 */
export function dispatchSamples(o: {
  ends: readonly number[];
  starts: readonly number[];
  slots: number;
  jobs: number;
  from: number;
  to: number;
}): DispatchSamples {
  const ends = [...o.ends].sort((a, b) => a - b);
  const starts = [...o.starts].sort((a, b) => a - b);
  const latencies: number[] = [];
  let pending = 0;
  ends.forEach((end, k) => {
    if (end < o.from || end > o.to || o.slots + k >= o.jobs) return;
    const start = starts[o.slots + k];
    if (start === undefined) pending += 1;
    else latencies.push(start - end);
  });
  return { latencies, pending };
}

/** `INFO`'s `field:value` lines as a map (sections and comments left out). */
export function parseInfo(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    if (line === '' || line.startsWith('#')) continue;
    const i = line.indexOf(':');
    if (i > 0) out.set(line.slice(0, i), line.slice(i + 1));
  }
  return out;
}

/** A numeric INFO field; throws naming it when absent. */
export function infoNumber(info: Map<string, string>, field: string): number {
  const v = info.get(field);
  if (v === undefined || !Number.isFinite(Number(v))) throw new Error(`Redis INFO has no numeric ${field}`);
  return Number(v);
}

/** Clock ticks per second of /proc's CPU times (USER_HZ, 100 on Linux everywhere it matters). */
const TICKS = 100;

/** CPU seconds (user + system) a process has used, from /proc/<pid>/stat. */
export async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces), from field 3 (state) on.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) / TICKS;
}

/** Resident memory of a process in bytes, from /proc/<pid>/status (VmRSS). */
export async function rssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+) kB/m.exec(status);
  if (!m) throw new Error(`/proc/${pid}/status has no VmRSS`);
  return Number(m[1]) * 1024;
}

/** Busy and total CPU seconds of the whole machine so far, from /proc/stat's first line. */
export async function machineCpu(): Promise<{ busy: number; total: number }> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0]!;
  const t = line.trim().split(/\s+/).slice(1).map(Number);
  const total = t.reduce((a, b) => a + b, 0);
  // idle + iowait
  const idle = (t[3] ?? 0) + (t[4] ?? 0);
  return { busy: (total - idle) / TICKS, total: total / TICKS };
}

/**
 * The local TCP ports of the sockets process `pid` holds (IPv4 and IPv6) that are connected to
 * `remotePort`, from /proc.
 */
export async function localPortsOf(pid: number, remotePort: number): Promise<Set<number>> {
  const inodes = new Set<string>();
  for (const fd of await readdir(`/proc/${pid}/fd`)) {
    const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
    const m = /^socket:\[(\d+)\]$/.exec(target);
    if (m) inodes.add(m[1]!);
  }
  const ports = new Set<number>();
  for (const table of ['tcp', 'tcp6']) {
    const text = await readFile(`/proc/${pid}/net/${table}`, 'utf8').catch(() => '');
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
      const port = (addr: string) => Number.parseInt(addr.slice(addr.lastIndexOf(':') + 1), 16);
      if (f.length > 9 && inodes.has(f[9]!) && port(f[2]!) === remotePort) ports.add(port(f[1]!));
    }
  }
  return ports;
}
