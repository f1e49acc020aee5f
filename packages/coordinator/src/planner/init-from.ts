import {
  type CheckpointRef,
  type FieldIssue,
  GantryError,
  MODEL_PARAMS,
  pinnedDatasetSchema,
  type ShapesRequest,
  type ShapesResult,
  SpecValidationError,
  type SweepSpec,
  type TensorShape,
  type TrialRecord,
  type WarmNet,
} from '@gantry/shared';
import type { PlannedTrial } from './plan-sweep.ts';

/** What resolving a spec's `init_from` reads: the source trial, and the networks' shapes (worker code). */
export interface InitFromDeps {
  trial(id: string): Promise<TrialRecord | undefined>;
  checkpoints(trialId: string): Promise<CheckpointRef[]>;
  /** The inference processes' shapes request (InferencePool.shapes; a fake in tests). */
  shapes(req: ShapesRequest): Promise<ShapesResult>;
}

/** Tensors listed per network and group of trials; the rest are counted. */
const MAX_LISTED = 12;

/**
 * Resolves and checks a spec's `init_from` against its planned trials: the source trial exists and has a
 * committed checkpoint at `step` (its latest when absent), and the checkpoint's tensors of every network
 * named fit the networks of every trial (built by an inference process once per distinct set of the
 * parameters that shape them). Returns the spec with the checkpoint pinned (`init_from.step` and `.source`).
 * @throws SpecValidationError naming `init_from.trial`, `init_from.step`, or listing under `init_from` the
 * tensors that do not fit (name: checkpoint shape vs expected; missing; extra), per network and trials
 */
export async function resolveInitFrom(
  spec: SweepSpec,
  plan: readonly PlannedTrial[],
  deps: InitFromDeps,
): Promise<SweepSpec> {
  const init = spec.init_from;
  if (!init) return spec;
  const refuse = (path: string, message: string) => new SpecValidationError([{ path, message }]);
  const source = await deps.trial(init.trial);
  if (!source) throw refuse('init_from.trial', `no trial '${init.trial}'`);
  const stepPath = init.step === undefined ? 'init_from.trial' : 'init_from.step';
  const ref = pickSource(source, await deps.checkpoints(source.id), init.step);
  if (typeof ref === 'string') throw refuse(stepPath, ref);

  const shaping = (name: string) => MODEL_PARAMS[spec.model][name]?.shapesNetworks !== false;
  const groups = distinctParams(plan, shaping);
  let shapes: ShapesResult;
  try {
    shapes = await deps.shapes({
      model: spec.model,
      dataset: pinnedDatasetSchema.parse(spec.dataset),
      params: groups.map((g) => g.params),
      ...(spec.stages ? { stages: spec.stages } : {}),
      checkpoint: { sweepId: source.sweepId, trialId: source.id, manifestKey: ref.manifestKey },
    });
  } catch (err) {
    // A checkpoint that is gone or damaged (the inference process verified it as a resume would).
    if (err instanceof GantryError && err.code === 'CORRUPT_CHECKPOINT') throw refuse(stepPath, err.message);
    throw err;
  }
  const held = shapes.checkpoint;
  if (!held) throw new Error('the shapes answer lacks the checkpoint');
  const issues: FieldIssue[] = [];
  for (const net of init.nets) {
    // Trials whose networks differ from the checkpoint's in the same way are reported together.
    const byProblem = new Map<
      string,
      { problems: string[]; trials: number[]; params: Record<string, number>[] }
    >();
    groups.forEach((g, i) => {
      const problems = mismatches(held[net], shapes.nets[i]![net]);
      if (problems.length === 0) return;
      const key = problems.join('\n');
      const entry = byProblem.get(key) ?? { problems, trials: [], params: [] };
      entry.trials.push(...g.trials);
      entry.params.push(g.params);
      byProblem.set(key, entry);
    });
    for (const { problems, trials, params } of byProblem.values()) {
      const who = trials.length === plan.length ? '' : ` (${trialsLabel(trials, params, groups, shaping)})`;
      const listed = problems.slice(0, MAX_LISTED);
      for (const p of listed) issues.push({ path: 'init_from', message: `${label(net)}${who}: ${p}` });
      if (problems.length > listed.length)
        issues.push({
          path: 'init_from',
          message: `${label(net)}${who}: and ${problems.length - listed.length} more tensors that do not fit`,
        });
    }
  }
  if (issues.length > 0) {
    // A staged source's later stage has other networks than the first stage a warm start fills.
    if (spec.stages && held.stage !== undefined && held.stage !== 0)
      issues.unshift({
        path: 'init_from.step',
        message: `the checkpoint at step ${held.step} holds the networks of the source's stage ${held.stage}; a warm start fills the trials' first stage: pick a checkpoint whose networks fit it (one of the source's first stage)`,
      });
    throw new SpecValidationError(issues);
  }
  return {
    ...spec,
    init_from: {
      ...init,
      step: ref.step,
      source: { sweepId: source.sweepId, manifestKey: ref.manifestKey },
    },
  };
}

/** The committed checkpoint to start from, or why there is none. */
function pickSource(
  trial: TrialRecord,
  refs: readonly CheckpointRef[],
  step: number | undefined,
): CheckpointRef | string {
  if (refs.length === 0)
    return `trial ${trial.id} has no committed checkpoint (${trial.state}, step ${trial.step})`;
  if (step === undefined) {
    const latest = trial.latestCheckpoint;
    return latest && refs.some((r) => r.manifestKey === latest.manifestKey) ? latest : refs.at(-1)!;
  }
  // After a health restart a step can be committed twice: the newest commit is the trial's.
  const hit = refs.findLast((r) => r.step === step);
  if (hit) return hit;
  const steps = [...new Set(refs.map((r) => r.step))].sort((a, b) => a - b);
  return `trial ${trial.id} has no committed checkpoint at step ${step}; steps with checkpoints: ${steps.join(', ')}`;
}

/**
 * The plan's trials grouped by the parameters that shape the networks (`shaping`; a learning rate does
 * not), each group with its first trial's parameters, in order of first use: one set of networks to build
 * per group.
 */
function distinctParams(
  plan: readonly PlannedTrial[],
  shaping: (name: string) => boolean,
): { params: Record<string, number>; trials: number[] }[] {
  const out = new Map<string, { params: Record<string, number>; trials: number[] }>();
  for (const t of plan) {
    const key = JSON.stringify(
      Object.entries(t.params)
        .filter(([name]) => shaping(name))
        .sort(([a], [b]) => a.localeCompare(b)),
    );
    const g = out.get(key) ?? { params: t.params, trials: [] };
    g.trials.push(t.index);
    out.set(key, g);
  }
  return [...out.values()];
}

const dims = (s: readonly number[]) => (s.length === 0 ? 'scalar' : s.join('x'));
const label = (net: WarmNet) => (net === 'g' ? 'G' : 'D');

/**
 * How a checkpoint's tensors differ from what a network expects: shapes that differ, tensors the
 * checkpoint lacks, tensors the network does not have. Empty when they fit exactly.
 */
export function mismatches(held: readonly TensorShape[], expected: readonly TensorShape[]): string[] {
  const heldBy = new Map(held.map((t) => [t.name, t.shape]));
  const expectedNames = new Set(expected.map((t) => t.name));
  const out: string[] = [];
  for (const t of expected) {
    const h = heldBy.get(t.name);
    if (!h) out.push(`${t.name}: missing from the checkpoint (expected ${dims(t.shape)})`);
    else if (dims(h) !== dims(t.shape))
      out.push(`${t.name}: checkpoint ${dims(h)} vs expected ${dims(t.shape)}`);
  }
  for (const t of held)
    if (!expectedNames.has(t.name))
      out.push(`${t.name}: extra in the checkpoint (${dims(t.shape)}), not in the new network`);
  return out;
}

/** "trials 0, 2: base_filters 16": the trials, and the shaping parameters by which the sweep's sets differ. */
function trialsLabel(
  trials: number[],
  params: Record<string, number>[],
  all: readonly { params: Record<string, number> }[],
  shaping: (name: string) => boolean,
): string {
  const varying = Object.keys(all[0]?.params ?? {})
    .sort()
    .filter((k) => shaping(k) && all.some((g) => g.params[k] !== all[0]!.params[k]));
  const values = varying.map((k) => `${k} ${[...new Set(params.map((p) => p[k]))].join('/')}`);
  const sorted = [...trials].sort((a, b) => a - b);
  return `trial${sorted.length > 1 ? 's' : ''} ${sorted.join(', ')}${values.length > 0 ? `: ${values.join(', ')}` : ''}`;
}
