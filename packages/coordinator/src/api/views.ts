import type { SweepSpec, TrialRecord } from '@gantry/shared';
import type { StoredSweep } from '../sweep-store.ts';

/** The trial fields a sweep listing shows. */
export function trialSummary(t: TrialRecord) {
  return {
    id: t.id,
    index: t.index,
    state: t.state,
    params: t.params,
    step: t.step,
    steps: t.steps,
    attempts: t.attempts,
    worker: t.worker,
    reason: t.reason,
    metrics: t.metrics,
    quality: t.quality,
    health: t.health ? { restarts: t.health.restarts, last: t.health.detections.at(-1) } : undefined,
    stage: t.stage,
    result: t.result,
  };
}

/** Best completed trial by the sweep's metric, if any. */
export function bestTrial(spec: SweepSpec, trials: readonly TrialRecord[]) {
  const sign = spec.metric.goal === 'minimize' ? 1 : -1;
  let best: TrialRecord | undefined;
  for (const t of trials) {
    if (t.state !== 'completed' || t.result === undefined) continue;
    if (!best || sign * t.result < sign * best.result!) best = t;
  }
  return best
    ? { trialId: best.id, metric: spec.metric.name, value: best.result, params: best.params }
    : null;
}

export function sweepView(s: StoredSweep, trials: readonly TrialRecord[]) {
  const counts: Record<string, number> = {};
  for (const t of trials) counts[t.state] = (counts[t.state] ?? 0) + 1;
  return {
    id: s.id,
    name: s.name,
    state: s.state,
    model: s.spec.model,
    dataset: s.spec.dataset,
    metric: s.spec.metric,
    createdAt: new Date(s.createdAt).toISOString(),
    endedAt: s.endedAt ? new Date(s.endedAt).toISOString() : undefined,
    trialCounts: counts,
    best: bestTrial(s.spec, trials),
  };
}

/**
 * JSON of `head` with `items` as its field `key`, stringified `chunk` items at a time with the event loop
 * in between: one 10,000-trial answer would otherwise hold the process for ~40 ms in one piece.
 */
export async function jsonInPieces(
  head: Record<string, unknown>,
  key: string,
  items: readonly unknown[],
  chunk = 500,
): Promise<string> {
  const start = JSON.stringify({ ...head, [key]: [] });
  const parts: string[] = [];
  for (let i = 0; i < items.length; i += chunk) {
    parts.push(
      items
        .slice(i, i + chunk)
        .map((x) => JSON.stringify(x) ?? 'null')
        .join(','),
    );
    if (i + chunk < items.length) await new Promise((r) => setImmediate(r));
  }
  // `start` ends with `"<key>":[]}`: the items go between the brackets.
  return `${start.slice(0, -2)}${parts.join(',')}]}`;
}
