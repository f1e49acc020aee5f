import type { DatasetManifest, PinnedDataset } from './dataset.ts';
import type { FieldIssue } from './errors.ts';
import { FAMILIES, type FamilySpec } from './families.ts';
import { QUALITY_CLASSIFIERS, qualityClassifierName, STAGE_RESOLUTIONS } from './models.ts';
import type { SweepSpec } from './sweep-spec.ts';

/** Metrics that score the data's classes. */
const CLASS_METRICS = new Set(['class_coverage', 'class_kl', 'class_accuracy', 'class_accuracy_real']);

/** A spec's data set checked against the version it resolved to. */
export interface DatasetFit {
  /** What every trial's job carries. */
  dataset: PinnedDataset;
  /** Problems that refuse the spec, each naming its field. */
  issues: FieldIssue[];
  /** What was changed to make the spec fit, for the submitter to read. */
  warnings: string[];
}

/**
 * Checks that the data set version `m` suits the spec's model and options, and pins it: a paired model
 * needs a paired set and the others an unpaired one, a conditional model needs classes, the image size
 * must be one the model's networks take (progan grows to at most its largest stage canvas), and a metric
 * of the data's classes needs classes. A warning says when the first evaluation will train the set's
 * quality classifier.
 */
export function fitDataset(spec: SweepSpec, m: DatasetManifest): DatasetFit {
  const issues: FieldIssue[] = [];
  const warnings: string[] = [];
  const ref = spec.dataset;
  const label = `data set '${m.name}' (version ${m.version})`;
  const family = FAMILIES[spec.model];
  const { paired } = family;
  if (m.paired && !paired)
    issues.push({
      path: 'dataset',
      message: `${label} is paired (A -> B); model ${spec.model} trains on single images: push one side as a set of its own`,
    });
  if (!m.paired && paired)
    issues.push({
      path: 'dataset',
      message: `model ${spec.model} needs a paired set; ${label} is not paired`,
    });
  if (family.conditional && m.classes.length < 2)
    issues.push({
      path: 'dataset',
      message: `model ${spec.model} is conditioned on classes; ${label} has ${m.classes.length === 0 ? 'none' : 'one'}`,
    });
  if (ref.subset_per_class !== undefined && m.classes.length === 0)
    issues.push({ path: 'dataset.subset_per_class', message: `${label} has no classes` });
  const channels = ref.channels ?? m.image.channels;
  if (channels === 4 && m.image.channels !== 4)
    issues.push({
      path: 'dataset.channels',
      message: `${label} has no alpha channel (it has ${m.image.channels})`,
    });
  if (m.image.height !== m.image.width)
    issues.push({
      path: 'dataset',
      message: `${label} holds ${m.image.width}x${m.image.height} images, not squares`,
    });
  const size = ref.image_size ?? m.image.height;
  const sizePath = ref.image_size === undefined ? 'dataset' : 'dataset.image_size';
  if (family.staged && !(family as FamilySpec).phases) {
    const canvas = 2 ** Math.ceil(Math.log2(size));
    const top = STAGE_RESOLUTIONS.at(-1)!;
    if (canvas > top)
      issues.push({
        path: sizePath,
        message: `${size}x${size} images: ${spec.model} grows to ${top}x${top} at most; set dataset.image_size to ${top}`,
      });
    const last = spec.stages?.at(-1)?.resolution;
    if (last !== undefined && last > canvas)
      issues.push({
        path: `stages.${spec.stages!.length - 1}.resolution`,
        message: `${last} is larger than the data set's ${size}x${size} images (grown on a ${canvas}x${canvas} canvas)`,
      });
  } else if (!(family.imageSides as readonly number[]).includes(size)) {
    issues.push({
      path: sizePath,
      message: `${size}x${size} images: ${spec.model} trains at ${family.imageSides.join(', ')} px; set dataset.image_size`,
    });
  }
  for (const [name, max] of Object.entries((family as FamilySpec).paramLimits?.(size) ?? {})) {
    const over = paramValues(spec, name).filter((v) => v > max);
    if (over.length > 0)
      issues.push({
        path: `parameters.${name}`,
        message: `${over.join(', ')} is too many for ${size}x${size} images: at most ${max} for ${spec.model}`,
      });
  }
  if ((family as FamilySpec).input === 'image' && spec.health.eval_every_steps > 0 && m.counts.test === 0)
    issues.push({
      path: 'dataset',
      message: `${label} has no held-out split: ${spec.model} is scored on held-out examples (push it with a test fraction, or set health.eval_every_steps to 0)`,
    });
  // Every set gets a quality classifier for the images its trials see: the project's committed one where it
  // reads them, else one trained by the first trial that evaluates (on the classes, or on rotation
  // prediction for a set without classes) and kept beside the version. Class scores need classes.
  if (CLASS_METRICS.has(spec.metric.name) && m.classes.length < 2)
    issues.push({
      path: 'metric.name',
      message: `${spec.metric.name} scores the data's classes; ${label} has none (rank by fld instead)`,
    });
  const committed = QUALITY_CLASSIFIERS[qualityClassifierName(m.name)];
  if (
    spec.health.eval_every_steps > 0 &&
    !(committed && committed.size === size && committed.channels === channels)
  )
    warnings.push(
      `no committed quality classifier for ${m.name} at ${size}x${size}x${channels}: the first evaluation trains one on the set (${m.classes.length >= 2 ? 'its classes' : 'rotation prediction'}) and keeps it beside the version`,
    );
  return {
    dataset: {
      name: m.name,
      version: m.version,
      image_size: size,
      channels: channels as 1 | 3 | 4,
      ...(ref.subset_per_class !== undefined ? { subset_per_class: ref.subset_per_class } : {}),
    },
    issues,
    warnings,
  };
}

/** Every value parameter `name` can take in the spec's trials: its values or range ends, else the default. */
function paramValues(spec: SweepSpec, name: string): number[] {
  const p = spec.parameters[name];
  const listed = spec.configurations.flatMap((c) => (c[name] !== undefined ? [c[name]!] : []));
  if (p?.kind === 'value') return [p.value, ...listed];
  if (p?.kind === 'values') return [...p.values, ...listed];
  if (p?.kind === 'distribution') return [p.min, p.max];
  const fallback = FAMILIES[spec.model].params[name]?.default;
  return listed.length > 0 ? listed : fallback === undefined ? [] : [fallback];
}
