/** The scale simulation's tables (markdown, README-ready) and the issue's targets beside the figures. */
import type { PassCost, ScaleRow } from './scale-run.ts';

/** The issue's targets: planning 10,000 trials, and at 1,000 workers dispatch p99 and coordinator CPU. */
export const TARGETS = {
  planningMs: 2000,
  dispatchP99Ms: 100,
  coordinatorCores: 1,
  atWorkers: 1000,
} as const;

const f = (x: number, digits = 0) => (Number.isFinite(x) ? x.toFixed(digits) : 'n/a');
const thousands = (x: number) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : 'n/a');

/**
 * One line per N: the figures the issue asks for, the hosts' CPU that shares the machine with them, and the
 * whole machine's busy cores (everything running on it, other work included).
 */
export function scaleTable(rows: readonly ScaleRow[]): string {
  const head = [
    'N workers',
    'planning: POST /v1/sweeps',
    'dispatch p50 / p99 (samples)',
    'of which to the job queued',
    'coordinator CPU',
    'coordinator RSS',
    'Redis commands/s',
    'Redis memory',
    'GET /v1/sweeps/:id p50 / p99',
    'worker hosts CPU',
    'machine busy',
  ];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => ' ---:').join(' |')} |`];
  for (const r of rows) {
    const u = r.usage;
    lines.push(
      `| ${[
        thousands(r.workers),
        `${f(r.planning.post_ms)} ms (${thousands(r.trials)} trials)`,
        `${f(r.dispatch.p50_ms)} / ${f(r.dispatch.p99_ms)} ms (${r.dispatch.samples})`,
        `${f(r.dispatch_queued.p50_ms)} / ${f(r.dispatch_queued.p99_ms)} ms`,
        `${f(u.coordinator_cores, 2)} cores`,
        `${f(u.coordinator_rss_mb_max)} MB`,
        thousands(u.redis_commands_per_s),
        `${f(u.redis_used_memory_mb_max)} MB`,
        `${f(r.api.p50_ms)} / ${f(r.api.p99_ms)} ms`,
        `${f(u.hosts_cores, 2)} cores`,
        `${f(u.machine_busy_cores, 2)} cores`,
      ].join(' | ')} |`,
    );
  }
  return lines.join('\n');
}

/** Whether each target is met, with the figure it was judged on. */
export function targetLines(rows: readonly ScaleRow[]): string[] {
  const out: string[] = [];
  for (const r of rows.filter((x) => x.trials >= 10_000))
    out.push(
      `planning ${thousands(r.trials)} trials < ${TARGETS.planningMs / 1000} s at N=${r.workers}: ${r.planning.post_ms < TARGETS.planningMs ? 'met' : 'NOT met'} (${f(r.planning.post_ms)} ms)`,
    );
  const big = rows.find((x) => x.workers === TARGETS.atWorkers);
  if (!big) out.push(`dispatch and coordinator CPU at N=${TARGETS.atWorkers}: not measured in this run`);
  else {
    out.push(
      `dispatch p99 < ${TARGETS.dispatchP99Ms} ms at N=${big.workers}: ${big.dispatch.p99_ms < TARGETS.dispatchP99Ms ? 'met' : 'NOT met'} (${f(big.dispatch.p99_ms)} ms over ${big.dispatch.samples} slots)`,
      `coordinator < ${TARGETS.coordinatorCores} core at N=${big.workers}: ${big.usage.coordinator_cores < TARGETS.coordinatorCores ? 'met' : 'NOT met'} (${f(big.usage.coordinator_cores, 2)} cores)`,
    );
  }
  return out;
}

function passLine(label: string, p: PassCost): string {
  const rate = (x: number) => x / p.commands.seconds;
  const top = Object.entries(p.commands.byCommand)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 4)
    .map(([cmd, k]) => `${cmd} ${thousands(rate(k))}`)
    .join(', ');
  return `| ${label} | ${thousands(p.trials)} | ${f(p.coordinator_cores, 2)} | ${thousands(rate(p.commands.total))} | ${top || 'none'} |`;
}

/**
 * The coordinator's cost with the big sweep at each N, and with a small sweep at the N that ran one: what
 * its work grows with (the issue's target: not with idle trials).
 */
export function passTable(rows: readonly ScaleRow[]): string {
  const lines = [
    '| N workers, sweep | trials | coordinator cores | coordinator Redis commands/s | most sent (per s) |',
    '| --- | ---: | ---: | ---: | --- |',
  ];
  for (const r of rows) {
    if (r.pass) lines.push(passLine(`${thousands(r.workers)}, main sweep`, r.pass));
    if (r.pass_small) lines.push(passLine(`${thousands(r.workers)}, small sweep`, r.pass_small));
  }
  return lines.join('\n');
}
