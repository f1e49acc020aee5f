import type { TrialHealth } from './health.ts';
import type {
  CheckpointRef,
  TrialMetrics,
  TrialQuality,
  TrialRecord,
  TrialStage,
  TrialState,
} from './trial-state.ts';

/** Redis hash <-> TrialRecord. Numbers and JSON are stored as strings; absent fields stay absent. */
export function encodeTrial(t: Partial<TrialRecord>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(t)) {
    if (v === undefined) continue;
    out[k] = typeof v === 'object' ? JSON.stringify(v) : String(v);
  }
  return out;
}

const num = (s: string | undefined): number | undefined =>
  s === undefined || s === '' ? undefined : Number(s);
const json = <T>(s: string | undefined): T | undefined => (s ? (JSON.parse(s) as T) : undefined);

export function decodeTrial(h: Record<string, string>): TrialRecord | undefined {
  if (!h.id || !h.sweepId) return undefined;
  return {
    id: h.id,
    sweepId: h.sweepId,
    index: num(h.index) ?? 0,
    state: (h.state ?? 'queued') as TrialState,
    params: json<Record<string, number>>(h.params) ?? {},
    seed: num(h.seed) ?? 0,
    step: num(h.step) ?? 0,
    steps: num(h.steps) ?? 0,
    reason: h.reason || undefined,
    worker: h.worker || undefined,
    attempts: num(h.attempts) ?? 0,
    resumedFrom: num(h.resumedFrom),
    metrics: json<TrialMetrics>(h.metrics),
    summary: json<Record<string, number>>(h.summary),
    result: num(h.result),
    latestCheckpoint: json<CheckpointRef>(h.latestCheckpoint),
    quality: json<TrialQuality>(h.quality),
    health: json<TrialHealth>(h.health),
    stage: json<TrialStage>(h.stage),
    jobStage: num(h.jobStage),
    segment: num(h.segment),
    until: num(h.until),
    pausedAt: num(h.pausedAt),
    createdAt: num(h.createdAt) ?? 0,
    startedAt: num(h.startedAt),
    endedAt: num(h.endedAt),
  };
}
