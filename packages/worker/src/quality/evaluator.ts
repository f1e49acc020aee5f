import type { Trainer } from '../families/family.ts';
import { type Classifier, type ClassifierManifest, loadClassifier } from './classifier.ts';
import { type QualityScores, scoreSamples } from './scores.ts';

/** Scores a trainer's generator with a classifier of its data set (see quality-source.ts for which one). */
export class QualityEvaluator {
  constructor(
    private readonly classifier: Classifier,
    readonly manifest: ClassifierManifest,
  ) {}

  /** The project's committed classifier of `dataset`. */
  static async load(dataset: string, dir?: string): Promise<QualityEvaluator> {
    const { classifier, manifest } = await loadClassifier(dataset, dir);
    return new QualityEvaluator(classifier, manifest);
  }

  /**
   * Generates `samples` images from the trainer's fixed evaluation noise and scores them; class scores only
   * when the classifier knows the data's classes (not a rotation-prediction network).
   */
  evaluate(trainer: Pick<Trainer, 'evalSamples'>, samples: number): QualityScores {
    const { images, labels } = trainer.evalSamples(samples);
    const { features, predictions } = this.classifier.describe(images, samples);
    const classes = this.manifest.labels !== 'rotation';
    return scoreSamples(features, predictions, this.manifest.stats, classes ? labels : undefined, classes);
  }

  /** The classifier's features and predictions of `count` images at its input size. */
  describe(images: Float32Array, count: number): { features: Float32Array; predictions: Int32Array } {
    return this.classifier.describe(images, count);
  }

  /** True when the classifier predicts the data's classes (not rotations of a set without classes). */
  get knowsClasses(): boolean {
    return this.manifest.labels !== 'rotation';
  }

  dispose(): void {
    this.classifier.dispose();
  }
}
