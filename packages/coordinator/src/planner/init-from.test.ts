import {
  type CheckpointRef,
  compileSweepSpec,
  InferenceError,
  type ShapesRequest,
  type ShapesResult,
  SpecValidationError,
  type SweepSpec,
  type TensorShape,
  type TrialRecord,
} from '@gantry/shared';
import { describe, expect, it } from 'vitest';
import { type InitFromDeps, mismatches, resolveInitFrom } from './init-from.ts';
import { planSweep } from './plan-sweep.ts';

const SOURCE = 'src-0a1b2c3d-t000';
const ref = (step: number, writer = 'w1'): CheckpointRef => ({
  step,
  manifestKey: `sweeps/src-0a1b2c3d/trials/${SOURCE}/checkpoints/${step}/${writer}/manifest.json`,
  worker: 'w1',
  t: step,
});

const sourceTrial: TrialRecord = {
  id: SOURCE,
  sweepId: 'src-0a1b2c3d',
  index: 0,
  state: 'completed',
  params: {},
  seed: 1,
  step: 20,
  attempts: 1,
  latestCheckpoint: ref(20),
  createdAt: 0,
} as TrialRecord;

function spec(extra: Record<string, unknown> = {}): SweepSpec {
  return compileSweepSpec({
    name: 'warm',
    model: 'dcgan',
    dataset: { name: 'swatches', version: '0123456789abcdef', image_size: 16, channels: 3 },
    method: 'grid',
    budget: { steps: 10 },
    parameters: { base_filters: { value: 8 } },
    init_from: { trial: SOURCE },
    ...extra,
  });
}

/** The networks a fake family builds: G's first layer is base_filters wide. */
function nets(params: Record<string, number>): { g: TensorShape[]; d: TensorShape[] } {
  const f = params.base_filters ?? 8;
  return {
    g: [
      { name: 'g/fc/w', shape: [8, 16 * f] },
      { name: 'g/out/w', shape: [4, 4, f, 3] },
    ],
    d: [{ name: 'd/c1/w', shape: [4, 4, 3, f] }],
  };
}

/** Deps over a source trial with checkpoints at 10 and 20 (trained at base_filters 8), counting shapes calls. */
function deps(over: Partial<InitFromDeps> = {}) {
  const calls: ShapesRequest[] = [];
  const d: InitFromDeps = {
    trial: async (id) => (id === SOURCE ? sourceTrial : undefined),
    checkpoints: async () => [ref(10), ref(20)],
    shapes: async (req): Promise<ShapesResult> => {
      calls.push(req);
      return { nets: req.params.map(nets), checkpoint: { ...nets({ base_filters: 8 }), step: 20 } };
    },
    ...over,
  };
  return { deps: d, calls };
}

async function refused(p: Promise<unknown>): Promise<{ path: string; message: string }[]> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SpecValidationError);
  return [...(err as SpecValidationError).issues];
}

describe('resolveInitFrom', () => {
  it("pins the source's latest checkpoint, asking the networks' shapes once per distinct parameter set", async () => {
    const s = spec({ parameters: { lr_g: { values: [1e-4, 2e-4, 3e-4] }, base_filters: { value: 8 } } });
    const { deps: d, calls } = deps();
    const out = await resolveInitFrom(s, planSweep(s), d);
    expect(out.init_from).toEqual({
      trial: SOURCE,
      step: 20,
      nets: ['g', 'd'],
      source: { sweepId: 'src-0a1b2c3d', manifestKey: ref(20).manifestKey },
    });
    expect(calls).toHaveLength(1);
    // A learning rate leaves the networks as they are: one set of networks for the three trials.
    expect(calls[0]!.params).toHaveLength(1);
    expect(calls[0]!.checkpoint).toEqual({
      sweepId: 'src-0a1b2c3d',
      trialId: SOURCE,
      manifestKey: ref(20).manifestKey,
    });
    expect(calls[0]!.dataset).toEqual(s.dataset);
    // A random search over rates: as many sets as trials, one set of networks.
    const random = spec({
      method: 'random',
      budget: { trials: 5, steps: 10 },
      parameters: {
        base_filters: { value: 8 },
        lr_g: { distribution: 'log_uniform', min: 1e-5, max: 1e-3 },
        batch_size: { values: [8, 16] },
      },
    });
    const again = deps();
    await resolveInitFrom(random, planSweep(random), again.deps);
    expect(again.calls[0]!.params).toEqual([planSweep(random)[0]!.params]);
  });

  it('pins the checkpoint of a given step; a spec without init_from is returned as is', async () => {
    const s = spec({ init_from: { trial: SOURCE, step: 10, nets: ['g'] } });
    const out = await resolveInitFrom(s, planSweep(s), deps().deps);
    expect(out.init_from).toMatchObject({
      step: 10,
      nets: ['g'],
      source: { manifestKey: ref(10).manifestKey },
    });
    const { init_from: _, ...plain } = spec();
    const { deps: d, calls } = deps();
    expect(await resolveInitFrom(plain, planSweep(plain), d)).toBe(plain);
    expect(calls).toHaveLength(0);
  });

  it('refuses an unknown trial naming init_from.trial', async () => {
    const s = spec({ init_from: { trial: 'nope-t000' } });
    expect(await refused(resolveInitFrom(s, planSweep(s), deps().deps))).toEqual([
      { path: 'init_from.trial', message: "no trial 'nope-t000'" },
    ]);
  });

  it('refuses a trial without a committed checkpoint, and a step without one listing the steps', async () => {
    const s = spec();
    const none = await refused(resolveInitFrom(s, planSweep(s), deps({ checkpoints: async () => [] }).deps));
    expect(none).toEqual([
      {
        path: 'init_from.trial',
        message: `trial ${SOURCE} has no committed checkpoint (completed, step 20)`,
      },
    ]);
    const at = spec({ init_from: { trial: SOURCE, step: 15 } });
    const { deps: d, calls } = deps();
    expect(await refused(resolveInitFrom(at, planSweep(at), d))).toEqual([
      {
        path: 'init_from.step',
        message: `trial ${SOURCE} has no committed checkpoint at step 15; steps with checkpoints: 10, 20`,
      },
    ]);
    expect(calls).toHaveLength(0);
  });

  it('lists the tensors that do not fit, per network, naming the trials whose parameters differ', async () => {
    const s = spec({ parameters: { base_filters: { values: [8, 16, 32] } } });
    const { deps: d, calls } = deps();
    const issues = await refused(resolveInitFrom(s, planSweep(s), d));
    const g16 = 'G (trial 1: base_filters 16)';
    const g32 = 'G (trial 2: base_filters 32)';
    expect(issues.map((i) => i.path)).toEqual(Array(6).fill('init_from'));
    expect(issues.map((i) => i.message)).toEqual([
      `${g16}: g/fc/w: checkpoint 8x128 vs expected 8x256`,
      `${g16}: g/out/w: checkpoint 4x4x8x3 vs expected 4x4x16x3`,
      `${g32}: g/fc/w: checkpoint 8x128 vs expected 8x512`,
      `${g32}: g/out/w: checkpoint 4x4x8x3 vs expected 4x4x32x3`,
      'D (trial 1: base_filters 16): d/c1/w: checkpoint 4x4x3x8 vs expected 4x4x3x16',
      'D (trial 2: base_filters 32): d/c1/w: checkpoint 4x4x3x8 vs expected 4x4x3x32',
    ]);
    expect(calls[0]!.params.map((p) => p.base_filters)).toEqual([8, 16, 32]);
  });

  it('reports trials that differ the same way together, and all trials without naming them', async () => {
    const s = spec({ parameters: { base_filters: { values: [8, 16] }, lr_g: { values: [1e-4, 2e-4] } } });
    const grouped = await refused(resolveInitFrom(s, planSweep(s), deps().deps));
    expect(grouped[0]!.message).toBe(
      'G (trials 2, 3: base_filters 16): g/fc/w: checkpoint 8x128 vs expected 8x256',
    );
    const all = spec({ parameters: { base_filters: { value: 16 }, lr_g: { values: [1e-4, 2e-4] } } });
    const issues = await refused(resolveInitFrom(all, planSweep(all), deps().deps));
    expect(issues[0]!.message).toBe('G: g/fc/w: checkpoint 8x128 vs expected 8x256');
  });

  it('checks the named networks only: a D that does not fit is no obstacle to taking G', async () => {
    const wideD = deps({
      shapes: async (req) => ({
        nets: req.params.map((p) => ({ ...nets(p), d: [{ name: 'd/c1/w', shape: [4, 4, 3, 64] }] })),
        checkpoint: { ...nets({ base_filters: 8 }), step: 20 },
      }),
    });
    const g = spec({ init_from: { trial: SOURCE, nets: ['g'] } });
    expect((await resolveInitFrom(g, planSweep(g), wideD.deps)).init_from?.nets).toEqual(['g']);
    const both = spec();
    expect((await refused(resolveInitFrom(both, planSweep(both), wideD.deps))).map((i) => i.message)).toEqual(
      ['D: d/c1/w: checkpoint 4x4x3x8 vs expected 4x4x3x64'],
    );
  });

  it("says when a staged source's checkpoint is of a later stage than the one a warm start fills", async () => {
    const s = compileSweepSpec({
      name: 'warm',
      model: 'progan',
      dataset: { name: 'swatches', version: '0123456789abcdef', image_size: 8, channels: 3 },
      budget: {},
      stages: [
        { resolution: 4, stable_steps: 5 },
        { resolution: 8, stable_steps: 5 },
      ],
      init_from: { trial: SOURCE, nets: ['g'] },
    });
    const grown = deps({
      shapes: async (req) => {
        expect(req.stages).toEqual(s.stages);
        return {
          nets: req.params.map(() => ({ g: [{ name: 'g/b4/w', shape: [3, 3, 8, 8] }], d: [] })),
          checkpoint: {
            g: [
              { name: 'g/b4/w', shape: [3, 3, 8, 8] },
              { name: 'g/b8/w', shape: [3, 3, 8, 8] },
            ],
            d: [],
            step: 10,
            stage: 1,
          },
        };
      },
    });
    const issues = await refused(resolveInitFrom(s, planSweep(s), grown.deps));
    expect(issues[0]!.path).toBe('init_from.step');
    expect(issues[0]!.message).toMatch(
      /networks of the source's stage 1; a warm start fills the trials' first stage/,
    );
    expect(issues[1]).toEqual({
      path: 'init_from',
      message: 'G: g/b8/w: extra in the checkpoint (3x3x8x8), not in the new network',
    });
  });

  it('refuses a checkpoint the inference process finds corrupt or gone; other failures pass as they are', async () => {
    const s = spec({ init_from: { trial: SOURCE, step: 20 } });
    const gone = deps({
      shapes: async () => {
        throw new InferenceError(
          'CORRUPT_CHECKPOINT' as never,
          `checkpoint ${ref(20).manifestKey} is corrupt: manifest missing`,
        );
      },
    });
    const issues = await refused(resolveInitFrom(s, planSweep(s), gone.deps));
    expect(issues[0]!.path).toBe('init_from.step');
    expect(issues[0]!.message).toContain(ref(20).manifestKey);
    const busy = deps({
      shapes: async () => {
        throw new InferenceError('INFERENCE_BUSY', 'busy', { retryAfterS: 2 });
      },
    });
    await expect(resolveInitFrom(s, planSweep(s), busy.deps)).rejects.toMatchObject({
      code: 'INFERENCE_BUSY',
    });
  });
});

describe('mismatches', () => {
  it('names shapes that differ, tensors missing from the checkpoint and extra ones; none when they fit', () => {
    const a = { name: 'g/a', shape: [2, 3] };
    expect(mismatches([a], [a])).toEqual([]);
    expect(
      mismatches(
        [
          { name: 'g/a', shape: [3, 2] },
          { name: 'g/old', shape: [] },
        ],
        [a, { name: 'g/new', shape: [4] }],
      ),
    ).toEqual([
      'g/a: checkpoint 3x2 vs expected 2x3',
      'g/new: missing from the checkpoint (expected 4)',
      'g/old: extra in the checkpoint (scalar), not in the new network',
    ]);
  });
});
