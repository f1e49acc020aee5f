/**
 * Counts the commands one process sends to Redis, by command, over a few seconds of Redis's MONITOR
 * stream: Redis 7.0 keeps no per-connection command counts (CLIENT LIST has none before 7.2's tot-cmds),
 * so the coordinator's share is told apart by its connections' local ports (from /proc). MONITOR costs
 * Redis time of its own: the bench samples after its measurement window, never during it.
 */
import { createConnection } from 'node:net';
import { localPortsOf } from './measure.ts';

/** What a MONITOR sample saw. */
export interface CommandSample {
  seconds: number;
  /** Commands from the watched process, by command name (lowercase). */
  byCommand: Record<string, number>;
  /** All of the watched process's commands (scripts' inner calls not counted). */
  total: number;
  /** Every client's commands in the sample, for scale (scripts' inner calls not counted). */
  allClients: number;
}

/** One MONITOR line: `+<time> [<db> <addr>] "<command>" ...`; undefined for anything else. */
export function parseMonitorLine(line: string): { source: string; command: string } | undefined {
  const m = /^\+\d+\.\d+ \[\d+ ([^\]]+)\] "([^"]*)"/.exec(line);
  return m ? { source: m[1]!, command: m[2]!.toLowerCase() } : undefined;
}

/** Counts what process `pid` sends to the Redis at `redisUrl` for `seconds`. */
export async function sampleCommands(redisUrl: string, pid: number, seconds: number): Promise<CommandSample> {
  const url = new URL(redisUrl);
  const ports = await localPortsOf(pid, Number(url.port || 6379));
  const byCommand: Record<string, number> = {};
  let total = 0;
  let allClients = 0;
  await new Promise<void>((resolve, reject) => {
    const socket = createConnection({ host: url.hostname, port: Number(url.port || 6379) });
    let buffered = '';
    let started = false;
    // Set when the sample ends: lines still in flight are not counted.
    let done = false;
    socket.setEncoding('utf8');
    socket.once('error', reject);
    socket.once('connect', () => socket.write('MONITOR\r\n'));
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      const lines = buffered.split('\r\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        if (done) return;
        if (!started) {
          if (line !== '+OK') return reject(new Error(`MONITOR refused: ${line}`));
          started = true;
          setTimeout(() => {
            done = true;
            socket.destroy();
            resolve();
          }, seconds * 1000);
          continue;
        }
        const c = parseMonitorLine(line);
        if (!c || c.source === 'lua') continue;
        allClients += 1;
        const port = Number(c.source.slice(c.source.lastIndexOf(':') + 1));
        if (!ports.has(port)) continue;
        total += 1;
        byCommand[c.command] = (byCommand[c.command] ?? 0) + 1;
      }
    });
  });
  return { seconds, byCommand, total, allClients };
}
