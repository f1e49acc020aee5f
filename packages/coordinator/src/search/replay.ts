/**
 * `method: pbt-replay`'s schedule: the hyperparameters a PBT trial trained with, step by step, read back
 * from the sweep's exploit events (Jaderberg et al. 2017, section 4.1.3: the schedule found by PBT, replayed
 * from scratch). Pure.
 */
import type { ReplayPoint, SearchEvent } from '@gantry/shared';

type Exploit = Extract<SearchEvent, { kind: 'exploit' }>;

/**
 * The hyperparameter schedule PBT trial `trial` ended with, for pbt-replay: walking back through its
 * exploits, the latest exploit of a trial at or before a step gives the params from its `step`... Precisely:
 * schedule(t, upTo) = let e = t's last exploit with e.sourceStep <= upTo (exploits of t, by segment order):
 * none -> [{step: 0, params: initial(t)}]; else schedule(e.source, e.sourceStep) ++ [{step: e.sourceStep,
 * params: e.to}]. (A trial that copies a checkpoint continues from the source's step, so after the copy
 * its step is e.sourceStep.) Then consecutive points with equal params are merged, and points are strictly
 * increasing in step. Throws an Error naming the trial for a cycle or a missing initial params.
 * (Of two points at one step, the later in the lineage, the copying trial's, stays.)
 */
export function replaySchedule(
  trial: string,
  exploits: readonly Exploit[],
  initial: (trial: string) => Record<string, number> | undefined,
  upTo?: number,
): ReplayPoint[] {
  const byTrial = new Map<string, Exploit[]>();
  for (const e of exploits) {
    const list = byTrial.get(e.trial) ?? [];
    list.push(e);
    byTrial.set(e.trial, list);
  }
  for (const list of byTrial.values()) list.sort((a, b) => a.segment - b.segment);

  // Walk back from the trial to the root of its lineage: the chain of exploits, latest first.
  const chain: Exploit[] = [];
  const seen = new Set<string>();
  let t = trial;
  let limit = upTo ?? Number.POSITIVE_INFINITY;
  // A source's state at a copy is what its exploits made of it before the copy, never after.
  let before = Number.POSITIVE_INFINITY;
  for (;;) {
    const state = `${t}@${limit}`;
    if (seen.has(state))
      throw new Error(
        `pbt-replay: the lineage of trial '${trial}' has a cycle (through '${t}' at step ${limit})`,
      );
    seen.add(state);
    const e = lastExploit(byTrial.get(t), limit, before);
    if (!e) break;
    chain.push(e);
    t = e.source;
    limit = e.sourceStep;
    before = e.t;
  }
  const root = initial(t);
  if (!root) throw new Error(`pbt-replay: no initial params for trial '${t}' (in the lineage of '${trial}')`);

  const points: ReplayPoint[] = [{ step: 0, params: { ...root } }];
  for (const e of chain.reverse()) {
    const point = { step: e.sourceStep, params: { ...e.to } };
    if (points[points.length - 1]!.step === point.step) points[points.length - 1] = point;
    else points.push(point);
  }
  return points.filter((p, i) => i === 0 || !sameParams(points[i - 1]!.params, p.params));
}

/**
 * The params in force at `step` of a schedule (its last point at or before `step`; the first point before
 * it), and the step of the next change (undefined: none).
 * @throws Error for an empty schedule.
 */
export function scheduleAt(
  schedule: readonly ReplayPoint[],
  step: number,
): { params: Record<string, number>; next?: number } {
  if (schedule.length === 0) throw new Error('pbt-replay: the schedule has no points');
  let at = 0;
  while (at + 1 < schedule.length && schedule[at + 1]!.step <= step) at++;
  const next = schedule[at + 1]?.step;
  return next === undefined ? { params: schedule[at]!.params } : { params: schedule[at]!.params, next };
}

/** The last (by segment) of a trial's exploits whose source step is <= `upTo`, made at or before `before`. */
function lastExploit(
  list: readonly Exploit[] | undefined,
  upTo: number,
  before: number,
): Exploit | undefined {
  if (!list) return undefined;
  for (let i = list.length - 1; i >= 0; i--)
    if (list[i]!.sourceStep <= upTo && list[i]!.t <= before) return list[i];
  return undefined;
}

function sameParams(a: Record<string, number>, b: Record<string, number>): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => Object.hasOwn(b, k) && a[k] === b[k]);
}
