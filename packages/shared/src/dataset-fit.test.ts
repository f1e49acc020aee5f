import { describe, expect, it } from 'vitest';
import type { DatasetManifest } from './dataset.ts';
import { fitDataset } from './dataset-fit.ts';
import { compileSweepSpec } from './sweep-spec.ts';

function manifest(over: Partial<DatasetManifest> = {}): DatasetManifest {
  return {
    format: 'gantry-dataset/1',
    name: 'faces',
    version: '00112233aabbccdd',
    created_at: 1,
    image: { height: 64, width: 64, channels: 3 },
    classes: ['a', 'b'],
    paired: false,
    counts: { train: 90, test: 10 },
    split: { test_fraction: 0.1, method: 'x' },
    shards: [{ file: 'train-0000.bin.gz', split: 'train', count: 90, bytes: 10, sha256: '0'.repeat(64) }],
    source: { kind: 'directory', files: 100, skipped: 0, alpha: 'none' },
    ...over,
  };
}

function spec(over: Record<string, unknown> = {}) {
  return compileSweepSpec({ name: 's', model: 'dcgan', dataset: 'faces', budget: { steps: 10 }, ...over });
}

const paths = (fit: ReturnType<typeof fitDataset>) => fit.issues.map((i) => i.path);

describe('fitDataset', () => {
  it("pins the version with the set's own size and channels, and says when the first evaluation trains a classifier", () => {
    const fit = fitDataset(spec(), manifest());
    expect(fit.issues).toEqual([]);
    expect(fit.dataset).toEqual({ name: 'faces', version: '00112233aabbccdd', image_size: 64, channels: 3 });
    expect(fit.warnings.join()).toMatch(/first evaluation trains one on the set \(its classes\)/);
    expect(fitDataset(spec(), manifest({ classes: [] })).warnings.join()).toMatch(/rotation prediction/);
    expect(fitDataset(spec({ health: { eval_every_steps: 0 } }), manifest()).warnings).toEqual([]);
  });

  it('uses the committed classifier where it reads the images, and trains one at another size', () => {
    const fm = manifest({ name: 'fashion-mnist', image: { height: 28, width: 28, channels: 1 } });
    expect(fitDataset(spec({ dataset: 'fashion-mnist' }), fm).warnings).toEqual([]);
    const big = fitDataset(spec({ dataset: { name: 'fashion-mnist', image_size: 32 } }), fm);
    expect(big.warnings.join()).toMatch(/at 32x32x1: the first evaluation trains one/);
    expect(big.dataset.image_size).toBe(32);
  });

  it('refuses a class metric on a set without classes, naming metric.name; fld works on any set', () => {
    const unlabelled = manifest({ classes: [] });
    const metric = (name: string) => spec({ metric: { name, goal: 'minimize' } });
    expect(paths(fitDataset(metric('class_kl'), unlabelled))).toEqual(['metric.name']);
    expect(paths(fitDataset(metric('class_coverage'), unlabelled))).toEqual(['metric.name']);
    expect(fitDataset(metric('fld'), unlabelled).issues).toEqual([]);
    expect(fitDataset(metric('class_kl'), manifest()).issues).toEqual([]);
  });

  it('refuses a paired set for a model of single images, and cgan on a set without classes', () => {
    expect(paths(fitDataset(spec(), manifest({ paired: true, classes: [] })))).toEqual(['dataset']);
    expect(paths(fitDataset(spec({ model: 'cgan' }), manifest({ classes: [] })))).toEqual(['dataset']);
    expect(fitDataset(spec({ model: 'cgan' }), manifest()).issues).toEqual([]);
  });

  it('refuses options the set cannot give: subset per class without classes, alpha it lacks', () => {
    const noClasses = manifest({ classes: [] });
    expect(paths(fitDataset(spec({ dataset: { name: 'faces', subset_per_class: 5 } }), noClasses))).toEqual([
      'dataset.subset_per_class',
    ]);
    expect(paths(fitDataset(spec({ dataset: { name: 'faces', channels: 4 } }), manifest()))).toEqual([
      'dataset.channels',
    ]);
    const rgba = manifest({ image: { height: 64, width: 64, channels: 4 } });
    expect(fitDataset(spec({ dataset: { name: 'faces', channels: 4 } }), rgba).dataset.channels).toBe(4);
  });

  it('needs a side the networks are built for, naming dataset.image_size when one was given', () => {
    expect(paths(fitDataset(spec(), manifest({ image: { height: 30, width: 30, channels: 3 } })))).toEqual([
      'dataset',
    ]);
    expect(fitDataset(spec({ dataset: { name: 'faces', image_size: 16 } }), manifest()).issues).toEqual([]);
    expect(paths(fitDataset(spec({ dataset: { name: 'faces', image_size: 4 } }), manifest()))).toEqual([
      'dataset.image_size',
    ]);
  });

  it('lets progan grow to the canvas of the images, not past it', () => {
    const stages = (top: number) =>
      Array.from({ length: Math.log2(top) - 1 }, (_, i) => ({ resolution: 4 * 2 ** i, stable_steps: 5 }));
    const progan = (top: number, dataset: unknown = 'faces') =>
      spec({ model: 'progan', dataset, stages: stages(top), budget: { trials: 1 } });
    expect(fitDataset(progan(64), manifest()).issues).toEqual([]);
    expect(paths(fitDataset(progan(64, { name: 'faces', image_size: 32 }), manifest()))).toEqual([
      'stages.4.resolution',
    ]);
    // 28x28 sets grow on a 32x32 canvas (padded), as before.
    const fm = manifest({ name: 'fashion-mnist', image: { height: 28, width: 28, channels: 1 } });
    expect(fitDataset(progan(32, 'fashion-mnist'), fm).issues).toEqual([]);
    expect(fitDataset(progan(32, 'fashion-mnist'), fm).warnings).toEqual([]);
  });
});

describe('fitDataset for the image-conditioned families', () => {
  const srgan = (over: Record<string, unknown> = {}) =>
    compileSweepSpec({
      name: 's',
      model: 'srgan',
      dataset: 'faces',
      budget: { trials: 1 },
      stages: [{ phase: 'pretrain', steps: 10 }],
      ...over,
    });
  const pix2pix = (over: Record<string, unknown> = {}) =>
    spec({ model: 'pix2pix', metric: { name: 'l1', goal: 'minimize' }, ...over });

  it('takes srgan at its high-resolution sides (no progressive canvas), on any unpaired set', () => {
    expect(fitDataset(srgan(), manifest()).issues).toEqual([]);
    const odd = fitDataset(srgan(), manifest({ image: { height: 48, width: 48, channels: 3 } }));
    expect(paths(odd)).toEqual(['dataset']);
    expect(odd.issues[0]!.message).toMatch(/srgan trains at 16, 28, 32, 56, 64/);
    expect(paths(fitDataset(srgan(), manifest({ paired: true })))).toEqual(['dataset']);
  });

  it('needs a paired set for pix2pix; the paired built-ins are scored by the classifier of their B side', () => {
    expect(paths(fitDataset(pix2pix(), manifest()))).toEqual(['dataset']);
    expect(fitDataset(pix2pix(), manifest({ paired: true })).issues).toEqual([]);
    const pair = manifest({ name: 'emoji-google2twitter', paired: true, classes: [] });
    expect(fitDataset(pix2pix({ dataset: 'emoji-google2twitter' }), pair).warnings).toEqual([]);
    // The PatchGAN's strided convs must leave patches of 4 px: at 16 px the default 3 is too many.
    const small = manifest({ paired: true, image: { height: 16, width: 16, channels: 3 } });
    const deep = fitDataset(pix2pix(), small);
    expect(paths(deep)).toEqual(['parameters.n_layers']);
    expect(deep.issues[0]!.message).toMatch(/3 is too many for 16x16 images: at most 2/);
    expect(fitDataset(pix2pix({ parameters: { n_layers: { value: 2 } } }), small).issues).toEqual([]);
    expect(
      paths(
        fitDataset(pix2pix({ parameters: { n_layers: { values: [3, 4, 5] } } }), manifest({ paired: true })),
      ),
    ).toEqual(['parameters.n_layers']);
    // Scored on held-out examples: a set without any is refused unless evaluation is off.
    const noTest = manifest({ paired: true, counts: { train: 100, test: 0 } });
    expect(paths(fitDataset(pix2pix(), noTest))).toEqual(['dataset']);
    expect(
      fitDataset(
        pix2pix({ metric: { name: 'g_loss', goal: 'minimize' }, health: { eval_every_steps: 0 } }),
        noTest,
      ).issues,
    ).toEqual([]);
    // class_accuracy needs classes.
    const accuracy = pix2pix({
      dataset: 'emoji-google2twitter',
      metric: { name: 'class_accuracy', goal: 'maximize' },
    });
    expect(paths(fitDataset(accuracy, pair))).toEqual(['metric.name']);
  });
});
