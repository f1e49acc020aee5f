import type { StageEvent } from '@gantry/shared';
import type { SweepDetail, TrialRow } from './api-client.ts';

const BAR = 24;
const TERMINAL = new Set(['completed', 'failed', 'diverged', 'stopped', 'cancelled']);

function fmt(n: number | undefined, digits = 3): string {
  if (n === undefined || Number.isNaN(n)) return '-';
  if (n !== 0 && (Math.abs(n) < 1e-3 || Math.abs(n) >= 1e4)) return n.toExponential(2);
  return n.toFixed(digits);
}

export function formatParams(p: Record<string, number>): string {
  return Object.entries(p)
    .map(([k, v]) => `${k}=${Number.isInteger(v) ? v : fmt(v, 5)}`)
    .join(' ');
}

/** One line per trial: a progress bar (step / steps), losses and throughput. */
export function trialLine(t: TrialRow): string {
  const frac = t.steps > 0 ? Math.min(1, t.step / t.steps) : 0;
  const filled = Math.round(frac * BAR);
  const bar = `[${'#'.repeat(filled)}${'.'.repeat(BAR - filled)}]`;
  const m = t.metrics;
  const quality = t.quality ? ` FLD ${fmt(t.quality.fld, 2)}` : '';
  const stats = m ? `D ${fmt(m.d_loss)} G ${fmt(m.g_loss)}${quality} ${fmt(m.images_per_sec, 1)} img/s` : '';
  const why = t.reason && TERMINAL.has(t.state) && t.state !== 'completed' ? `  (${t.reason})` : '';
  const h = t.health?.last;
  const flag =
    h && !why
      ? `  [${h.detector} at step ${h.step}: ${h.action}${t.health!.restarts ? `, ${t.health!.restarts} restart(s)` : ''}]`
      : '';
  const id = t.id.slice(t.id.lastIndexOf('-') + 1);
  return `  ${id.padEnd(5)} ${t.state.padEnd(9)} ${bar} ${String(t.step).padStart(6)}/${t.steps}  ${stageText(t)}${stats}${why}${flag}`;
}

/**
 * `stage 2/3 16x16 fade 0.42 ` while a staged trial fades in, `stage 2/3 16x16 ` after, `stage 2/3 16x16
 * done ` while it waits for its next stage's job; '' for others.
 */
export function stageText(t: Pick<TrialRow, 'stage' | 'state'>): string {
  const s = t.stage;
  if (!s) return '';
  if (s.done >= s.count) return `stages ${s.count}/${s.count} `;
  const name = stageName(s);
  if (s.done > s.index) return `stage ${s.index + 1}/${s.count} ${name} done `;
  const fade = s.alpha < 1 && t.state === 'running' ? ` fade ${s.alpha.toFixed(2)}` : '';
  return `stage ${s.index + 1}/${s.count} ${name}${fade} `;
}

/** What a stage is called: its resolution (`16x16`) in progressive growing, else its phase (`pretrain`). */
function stageName(s: { resolution?: number; phase?: string }): string {
  return s.resolution !== undefined ? `${s.resolution}x${s.resolution}` : (s.phase ?? '');
}

/**
 * One line per stage of a staged trial from its stage events: resolution, wall time from its first start to
 * its end, attempts, workers, the steps it covered and the FLD at its end.
 */
export function stageTable(events: readonly StageEvent[]): string[] {
  const stages = [...new Set(events.map((e) => e.stage))].sort((a, b) => a - b);
  const lines = ['  stage  name         wall      attempts  workers            steps        FLD at end'];
  for (const stage of stages) {
    const mine = events.filter((e) => e.stage === stage);
    const starts = mine.filter((e) => e.event === 'start');
    const done = mine.find((e) => e.event === 'done');
    const first = starts[0];
    const wall = first && done ? `${((done.t - first.t) / 1000).toFixed(1)} s` : first ? 'running' : '-';
    const res = stageName(mine[0]!);
    const workers = [...new Set(starts.map((e) => e.worker))].join(',');
    const steps = first ? `${first.step}-${done?.step ?? '…'}` : '-';
    lines.push(
      `  ${String(stage + 1).padEnd(6)} ${res.padEnd(12)} ${wall.padEnd(9)} ${String(starts.length).padEnd(9)} ${workers.padEnd(18)} ${steps.padEnd(12)} ${fmt(done?.quality?.fld, 2)}`,
    );
  }
  return lines;
}

export function sweepHeader(s: SweepDetail): string {
  const counts = Object.entries(s.trialCounts)
    .map(([k, v]) => `${v} ${k}`)
    .join(', ');
  return `sweep ${s.id} (${s.model} on ${datasetLabel(s.dataset)}) ${s.state}: ${counts}`;
}

/** Trials ranked by the sweep's metric (completed ones first), for the end of a run. */
export function leaderboard(s: SweepDetail): string[] {
  const sign = s.metric.goal === 'minimize' ? 1 : -1;
  const ranked = [...s.trials].sort((a, b) => {
    const av = a.result ?? Number.POSITIVE_INFINITY * sign;
    const bv = b.result ?? Number.POSITIVE_INFINITY * sign;
    return a.result === undefined ? 1 : b.result === undefined ? -1 : sign * (av - bv);
  });
  const lines = [`leaderboard by ${s.metric.name} (${s.metric.goal}):`];
  ranked.forEach((t, i) => {
    const id = t.id.slice(t.id.lastIndexOf('-') + 1);
    lines.push(
      `  ${String(i + 1).padStart(2)}. ${id.padEnd(5)} ${t.state.padEnd(9)} ${s.metric.name}=${fmt(t.result, 4).padEnd(8)} ${formatParams(t.params)}`,
    );
  });
  return lines;
}

/**
 * Redraws a block of lines in place on a TTY. On a pipe (CI, logs) it prints the block when `key`
 * (e.g. the trials' states) changes, or every `pipeEveryMs` otherwise, so logs stay readable.
 */
export class LiveBlock {
  private lastLines = 0;
  private lastKey = '';
  private lastPrint = 0;

  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly pipeEveryMs = 15_000,
  ) {}

  render(lines: string[], key = ''): void {
    const text = lines.join('\n');
    if (!this.out.isTTY) {
      const now = Date.now();
      if (key !== this.lastKey || now - this.lastPrint >= this.pipeEveryMs) {
        this.out.write(`${text}\n`);
        this.lastKey = key;
        this.lastPrint = now;
      }
      return;
    }
    if (this.lastLines > 0) this.out.write(`\x1b[${this.lastLines}A\x1b[0J`);
    this.out.write(`${text}\n`);
    this.lastLines = lines.length;
  }
}

export function isTerminalSweep(state: string): boolean {
  return state === 'completed' || state === 'failed' || state === 'cancelled';
}

/** `name@version` of a sweep's data set (older sweeps stored a bare name). */
export function datasetLabel(d: SweepDetail['dataset'] | string): string {
  if (typeof d === 'string') return d;
  return d.version ? `${d.name}@${d.version}` : d.name;
}
