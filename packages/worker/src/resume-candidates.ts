import type { CheckpointRef, TrialHealth } from '@gantry/shared';
import { checkpointOrder } from '@gantry/shared';

/**
 * The checkpoints an attempt may resume from, best first: the trial's pointer, then the older committed
 * checkpoints of the same line of training, so that an unreadable newest checkpoint costs one interval
 * rather than the trial. A health restart rewinds training: checkpoints of the abandoned run past the
 * step it rewound to are not on the line and never offered. `fromStep` bounds them below (a stage's job
 * resumes from its stage's start at the earliest).
 */
export function resumeCandidates(
  latest: CheckpointRef | undefined,
  committed: readonly CheckpointRef[],
  health: TrialHealth | undefined,
  fromStep = 0,
): CheckpointRef[] {
  if (!latest) return [];
  const top = checkpointOrder(latest);
  // restartFrom of restart k (1-based) for the restarts whose detections are still kept.
  const restarts = (health?.detections ?? []).filter((d) => d.action === 'restart');
  const first = (health?.restarts ?? restarts.length) - restarts.length + 1;
  const onLine = (ref: CheckpointRef): boolean => {
    const r = ref.restarts ?? 0;
    return restarts.every(
      (d, i) => first + i <= r || ref.step <= (d.restartFrom ?? Number.POSITIVE_INFINITY),
    );
  };
  const seen = new Set<string>();
  const out: CheckpointRef[] = [];
  for (const ref of [latest, ...[...committed].sort((a, b) => checkpointOrder(b) - checkpointOrder(a))]) {
    if (seen.has(ref.manifestKey) || ref.step < fromStep || checkpointOrder(ref) > top) continue;
    if (ref !== latest && !onLine(ref)) continue;
    seen.add(ref.manifestKey);
    out.push(ref);
  }
  return out;
}
