import type { StageEvent } from '@gantry/shared';
import type { LineageRow, RungRow, SearchView } from '../search/views.ts';
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

/** `t003` of `sweep-1a2b-t003`. */
function shortId(id: string): string {
  return id.slice(id.lastIndexOf('-') + 1);
}

/** A search value to 4 significant digits (`46.67`, `0.9123`), '-' for none. */
function sig(v: number | null | undefined): string {
  return v === null || v === undefined ? '-' : String(Number(v.toPrecision(4)));
}

/** A hyperparameter as PBT lines show it: whole numbers as they are, rates as `2.0e-4`, others to 3 digits. */
export function paramValue(v: number): string {
  if (Number.isInteger(v) && Math.abs(v) < 1e5) return String(v);
  if (v !== 0 && (Math.abs(v) < 1e-2 || Math.abs(v) >= 1e4)) return v.toExponential(1);
  return String(Number(v.toPrecision(3)));
}

/** One row per ASHA rung: decisions there, the last cut-off and the best value (and whose). */
export function rungTable(rungs: readonly RungRow[], promote: boolean): string[] {
  const lines = ['  bracket  rung step  recorded  went on  stopped  paused/promoted  cut-off    best'];
  for (const r of rungs) {
    const held = promote ? `${r.paused}/${r.promoted}` : '-';
    const best = r.best === null ? '-' : `${sig(r.best)} (${shortId(r.bestTrial ?? '')})`;
    lines.push(
      `  ${String(r.bracket).padEnd(8)} ${String(r.step).padEnd(10)} ${String(r.recorded).padEnd(9)} ${String(r.continued).padEnd(8)} ${String(r.stopped).padEnd(8)} ${held.padEnd(16)} ${sig(r.cutoff).padEnd(10)} ${best}`,
    );
  }
  return lines;
}

/**
 * One PBT exploit: `t003 @400 <- t001 @400 (ckpt .../checkpoints/400/w1/manifest.json) lr_g 2.0e-4 -> 2.4e-4
 * (x1.2), lr_d 1.0e-4 -> 3.1e-4 (resample)`: the trial and its step, the source and the step of the
 * checkpoint it copied (its key below the source's trial folder), and each parameter that changed, from the
 * trial's own value to the new one, with what explore did to the source's value (`copied`: nothing, the
 * trial took the source's).
 */
export function lineageLine(e: LineageRow): string {
  const folder = `/trials/${e.source}/`;
  const at = e.sourceManifest.indexOf(folder);
  const ckpt = at >= 0 ? `.../${e.sourceManifest.slice(at + folder.length)}` : e.sourceManifest;
  const names = new Set([
    ...Object.keys(e.explored),
    ...Object.keys(e.to).filter((k) => e.to[k] !== e.from[k]),
  ]);
  const changes = [...names].sort().map((name) => {
    const from = e.from[name];
    const to = e.to[name];
    return `${name} ${from === undefined ? '-' : paramValue(from)} -> ${to === undefined ? '-' : paramValue(to)} (${e.explored[name] ?? 'copied'})`;
  });
  return `  ${shortId(e.trial)} @${e.step} <- ${shortId(e.source)} @${e.sourceStep} (ckpt ${ckpt}) ${changes.join(', ') || 'no parameter changed'}`;
}

/** What the spec searches with, in one line per method and scheduler. */
function searchSettings(s: SearchView): string[] {
  const lines: string[] = [];
  if (s.tpe) {
    const seeded = s.warmStart?.length ? `, seeded from ${s.warmStart.join(', ')}` : '';
    lines.push(
      `search: tpe, ${s.tpe.startup_trials} random startup trials, gamma ${s.tpe.gamma}, ${s.tpe.n_ei_candidates} candidates${s.tpe.constant_liar ? ', constant liar' : ''}${seeded}`,
    );
  }
  if (s.method === 'pbt-replay' && s.replay) {
    lines.push(`search: pbt-replay of ${s.replay.trial} (sweep ${s.replay.sweep})`);
    const schedule = s.replay.schedule;
    if (!schedule) lines.push('  schedule not pinned yet');
    for (const p of schedule ?? [])
      lines.push(
        `  from step ${p.step}: ${Object.entries(p.params)
          .map(([k, v]) => `${k}=${paramValue(v)}`)
          .join(' ')}`,
      );
  }
  const sch = s.scheduler;
  if (sch?.type === 'asha')
    lines.push(
      `search: asha (${sch.mode}), eta ${sch.eta}, min_steps ${sch.min_steps}, ${sch.brackets} bracket${sch.brackets > 1 ? 's' : ''}`,
    );
  else if (sch?.type === 'median')
    lines.push(
      `search: median stopping after ${sch.grace_steps} steps, once ${sch.min_trials} other trials report`,
    );
  else if (sch?.type === 'pbt')
    lines.push(
      `search: pbt every ${sch.interval} steps, quantile ${sch.quantile}, resample ${sch.resample_probability}, perturb x${sch.perturb[0]}/x${sch.perturb[1]}${sch.params ? ` (${sch.params.join(', ')})` : ''}`,
    );
  return lines;
}

/** Trials of one kind of stop, as `2 (t003 @300, t005 @400)`. */
function stopList(s: SearchView, kind: SearchView['stops'][number]['kind']): string {
  const mine = s.stops.filter((x) => x.kind === kind);
  return mine.length === 0
    ? '0'
    : `${mine.length} (${mine.map((x) => `${shortId(x.trial)} @${x.step}`).join(', ')})`;
}

/**
 * The search section of `gantry status <sweep>` from the sweep's `search` block: the method and scheduler
 * settings, ASHA's rung table, the median stops, paused trials never promoted and the PBT lineage; nothing
 * for a sweep without adaptive search.
 */
export function searchSection(s: SearchView | null | undefined): string[] {
  if (!s) return [];
  const lines = searchSettings(s);
  const sch = s.scheduler;
  if (sch?.type === 'asha') {
    lines.push(...rungTable(s.rungs, sch.mode === 'promote'));
    if (sch.mode === 'promote') lines.push(`never promoted: ${stopList(s, 'end')}`);
  } else if (sch?.type === 'median') lines.push(`median stops: ${stopList(s, 'median')}`);
  else if (sch?.type === 'pbt') {
    const n = s.lineage.length;
    lines.push(
      `pbt lineage: ${n} exploit${n === 1 ? '' : 's'}, ${s.continues} continue${s.continues === 1 ? '' : 's'}`,
    );
    for (const e of s.lineage) lines.push(lineageLine(e));
  }
  return lines;
}
