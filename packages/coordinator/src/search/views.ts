import {
  ashaRungs,
  isQualityMetric,
  type MetricName,
  type ParameterSpec,
  type ReplaySpec,
  type SchedulerSpec,
  type SearchEvent,
  type SearchMethod,
  type SweepSpec,
  type TpeSpec,
  type TrialRecord,
} from '@gantry/shared';

type ExploitEvent = Extract<SearchEvent, { kind: 'exploit' }>;

/** One ASHA rung of one bracket: what the trials that reached it were told. */
export interface RungRow {
  bracket: number;
  /** 0-based rung of the bracket. */
  rung: number;
  step: number;
  /** Trials recorded at the rung (each decision made there). */
  recorded: number;
  continued: number;
  stopped: number;
  paused: number;
  /** Promote mode: trials promoted out of this rung. */
  promoted: number;
  /** The cut-off of the last decision there that had one; null before any (or in promote mode). */
  cutoff: number | null;
  /** Best value recorded at the rung (by the metric's goal) and whose it is; null before any. */
  best: number | null;
  bestTrial: string | null;
}

/** A trial the search ended early, and why. */
export interface StopRow {
  trial: string;
  step: number;
  /** `asha`: below a rung's cut-off; `median`: the median rule; `end`: paused and never promoted; `other`: stopped without a search decision (a health rule). */
  kind: 'asha' | 'median' | 'end' | 'other';
  reason: string;
}

/** A PBT exploit: `trial` copied `source`'s checkpoint at `sourceStep` and explored `from` -> `to`. */
export type LineageRow = Omit<ExploitEvent, 'kind'>;

/** The sweep's `search` block (GET /v1/sweeps/:id): the spec's search settings and every decision so far. */
export interface SearchView {
  method: SearchMethod;
  scheduler: SchedulerSpec | null;
  tpe: TpeSpec | null;
  /** ASHA: every rung of every bracket, reached or not, by bracket then rung; empty otherwise. */
  rungs: RungRow[];
  /** In the order the decisions were made; trials stopped without one last. */
  stops: StopRow[];
  /** PBT exploits in the order they were made. */
  lineage: LineageRow[];
  /** PBT ready points where the trial went on with its own weights (pbt-replay: schedule steps). */
  continues: number;
  replay: ReplaySpec | null;
  /** `method: tpe`: the sweeps whose results seeded the searcher. */
  warmStart: string[] | null;
  /** The recorded SearchEvents, oldest first. */
  events: SearchEvent[];
}

/** Shortest decimal that keeps 4 significant digits: reasons read `412.3`, not `412.34567`. */
function num(v: number): string {
  return String(Number(v.toPrecision(4)));
}

function stopReason(e: SearchEvent): string {
  switch (e.kind) {
    case 'rung':
      return `asha rung ${e.rung} of bracket ${e.bracket} (step ${e.step}): ${num(e.value)} is worse than the cut-off ${e.cutoff === null ? '-' : num(e.cutoff)} of ${e.recorded + 1} values`;
    case 'median':
      return `median rule at step ${e.step}: best ${num(e.value)} is worse than the median ${num(e.median)} of ${e.others} other trials' running averages`;
    case 'end':
      return e.reason;
    default:
      return '';
  }
}

/**
 * The `search` block of a sweep from its spec, its SearchEvents (oldest first) and its trials (for trials
 * that ended `stopped` without a search decision). Values are the metric as measured; `best` follows the
 * spec's metric.goal. Pure.
 */
export function searchView(
  spec: SweepSpec,
  events: readonly SearchEvent[],
  trials: readonly TrialRecord[],
): SearchView {
  const sign = spec.metric.goal === 'minimize' ? 1 : -1;
  const rungs = new Map<string, RungRow>();
  const rungOf = (bracket: number, rung: number, step: number): RungRow => {
    const key = `${bracket}/${rung}`;
    let row = rungs.get(key);
    if (!row) {
      row = {
        bracket,
        rung,
        step,
        recorded: 0,
        continued: 0,
        stopped: 0,
        paused: 0,
        promoted: 0,
        cutoff: null,
        best: null,
        bestTrial: null,
      };
      rungs.set(key, row);
    }
    return row;
  };
  const sch = spec.scheduler;
  if (sch?.type === 'asha') {
    for (let b = 0; b < sch.brackets; b++)
      ashaRungs(sch, b, spec.budget.steps).forEach((step, k) => {
        rungOf(b, k, step);
      });
  }
  const stops: StopRow[] = [];
  const lineage: LineageRow[] = [];
  let continues = 0;
  // An ASHA stop decided after its trial had completed (its evaluation at the rung was read late: the trial
  // trained on to its end while the coordinator was down) counts at its rung but stopped nothing.
  const ended = new Set(trials.filter((t) => t.state === 'completed').map((t) => t.id));
  for (const e of events) {
    if (e.kind === 'rung') {
      const row = rungOf(e.bracket, e.rung, e.step);
      row.recorded += 1;
      if (e.action === 'continue') row.continued += 1;
      else if (e.action === 'stop') row.stopped += 1;
      else row.paused += 1;
      if (e.cutoff !== null) row.cutoff = e.cutoff;
      if (row.best === null || sign * e.value < sign * row.best) {
        row.best = e.value;
        row.bestTrial = e.trial;
      }
      if (e.action === 'stop' && !ended.has(e.trial))
        stops.push({ trial: e.trial, step: e.step, kind: 'asha', reason: stopReason(e) });
    } else if (e.kind === 'promote') {
      rungOf(e.bracket, e.rung, e.step).promoted += 1;
    } else if (e.kind === 'median' || e.kind === 'end') {
      stops.push({ trial: e.trial, step: e.step, kind: e.kind, reason: stopReason(e) });
    } else if (e.kind === 'exploit') {
      const { kind: _k, ...row } = e;
      lineage.push(row);
    } else continues += 1;
  }
  const decided = new Set(stops.map((s) => s.trial));
  for (const t of trials) {
    if (t.state === 'stopped' && !decided.has(t.id))
      stops.push({ trial: t.id, step: t.step, kind: 'other', reason: t.reason ?? 'stopped' });
  }
  return {
    method: spec.method,
    scheduler: spec.scheduler ?? null,
    tpe: spec.tpe ?? null,
    rungs: [...rungs.values()].sort((a, b) => a.bracket - b.bracket || a.rung - b.rung),
    stops,
    lineage,
    continues,
    replay: spec.replay ?? null,
    warmStart: spec.warm_start ?? null,
    events: [...events],
  };
}

/** True when the sweep's spec searches adaptively (a scheduler, tpe or pbt-replay): the `search` block says something. */
export function hasSearch(spec: SweepSpec): boolean {
  return spec.scheduler !== undefined || spec.method === 'tpe' || spec.method === 'pbt-replay';
}

/**
 * A trial's value of the sweep's metric, as the search saw it: a completed trial's result; a stopped
 * trial's last evaluation (its quality for a quality metric, its last step metrics otherwise), with
 * `stopped: true`; undefined for any other trial or a missing value.
 */
export function trialValue(
  metric: MetricName,
  t: Pick<TrialRecord, 'state' | 'result' | 'quality' | 'metrics'>,
): { value: number; stopped: boolean } | undefined {
  if (t.state === 'completed')
    return t.result === undefined ? undefined : { value: t.result, stopped: false };
  if (t.state !== 'stopped') return undefined;
  const source = (isQualityMetric(metric) ? t.quality : t.metrics) as Record<string, unknown> | undefined;
  const v = source?.[metric];
  return typeof v === 'number' && Number.isFinite(v) ? { value: v, stopped: true } : undefined;
}

/**
 * The parameters a sweep's trials differ in, as specs: the spec's searched ones as written, plus any
 * parameter the trials took more than one value of although the spec holds it constant (method list's
 * configurations) as a `values` list of those values. Parameters every trial shares are left out.
 */
export function searchedSpace(
  spec: Pick<SweepSpec, 'parameters'>,
  trials: readonly Pick<TrialRecord, 'params'>[],
): Record<string, ParameterSpec> {
  const out: Record<string, ParameterSpec> = {};
  const names = new Set([...Object.keys(spec.parameters), ...trials.flatMap((t) => Object.keys(t.params))]);
  for (const name of [...names].sort()) {
    const p = spec.parameters[name];
    if (p && p.kind !== 'value') {
      out[name] = p;
      continue;
    }
    const values = [...new Set(trials.map((t) => t.params[name]).filter((v) => v !== undefined))];
    if (values.length > 1) out[name] = { kind: 'values', values: values.sort((a, b) => a - b) };
  }
  return out;
}
