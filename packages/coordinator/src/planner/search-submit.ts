import { type FieldIssue, type SearchEvent, SpecValidationError, type SweepSpec } from '@gantry/shared';
import { replaySchedule } from '../search/replay.ts';
import type { SweepStore } from '../sweep-store.ts';

type Exploit = Extract<SearchEvent, { kind: 'exploit' }>;

/**
 * Checks and pins what a spec's search takes from other sweeps when it is submitted: `warm_start`'s sweeps
 * must exist and rank by the same metric the same way on the same model; `method: pbt-replay` gets the
 * recorded schedule of its PBT trial pinned in `replay.schedule` (the trial's own explores and those of
 * every trial it copied weights from, up to each copy). @throws SpecValidationError naming the field
 */
export async function resolveSearch(spec: SweepSpec, store: SweepStore): Promise<SweepSpec> {
  const issues: FieldIssue[] = [];
  for (const [i, id] of (spec.warm_start ?? []).entries()) {
    const old = await store.get(id);
    const path = `warm_start.${i}`;
    if (!old) issues.push({ path, message: `no sweep '${id}'` });
    else if (old.spec.model !== spec.model)
      issues.push({ path, message: `sweep ${id} trained ${old.spec.model}, not ${spec.model}` });
    else if (old.spec.metric.name !== spec.metric.name || old.spec.metric.goal !== spec.metric.goal)
      issues.push({
        path,
        message: `sweep ${id} ranks by ${old.spec.metric.name} (${old.spec.metric.goal}), not ${spec.metric.name} (${spec.metric.goal})`,
      });
  }
  if (issues.length > 0) throw new SpecValidationError(issues);
  if (spec.method !== 'pbt-replay' || !spec.replay) return spec;
  const { sweep: sweepId, trial } = spec.replay;
  const source = await store.get(sweepId);
  if (!source) throw new SpecValidationError([{ path: 'replay.sweep', message: `no sweep '${sweepId}'` }]);
  if (source.spec.scheduler?.type !== 'pbt')
    throw new SpecValidationError([
      { path: 'replay.sweep', message: `sweep ${sweepId} did not run pbt: it has no schedule to replay` },
    ]);
  if (source.spec.model !== spec.model)
    throw new SpecValidationError([
      { path: 'model', message: `must be ${source.spec.model}, the model of sweep ${sweepId}` },
    ]);
  if (!source.trialIds.includes(trial))
    throw new SpecValidationError([
      { path: 'replay.trial', message: `not a trial of sweep ${sweepId} (${source.trialIds[0]} ...)` },
    ]);
  const trials = new Map((await store.trials(source.trialIds)).map((t) => [t.id, t]));
  const exploits = (await store.searchEvents(sweepId)).filter((e): e is Exploit => e.kind === 'exploit');
  // A trial's params before its first exploit are what it started with; one never exploited still has them.
  const initial = (id: string) =>
    exploits.filter((e) => e.trial === id).sort((a, b) => a.segment - b.segment)[0]?.from ??
    trials.get(id)?.params;
  const upTo = trials.get(trial)?.step;
  let schedule: ReturnType<typeof replaySchedule>;
  try {
    schedule = replaySchedule(trial, exploits, initial, upTo);
  } catch (err) {
    throw new SpecValidationError([{ path: 'replay.trial', message: (err as Error).message }]);
  }
  return { ...spec, replay: { ...spec.replay, schedule } };
}
