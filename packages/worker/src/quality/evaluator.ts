import type { Trainer } from '../families/family.ts';
import { type Classifier, type ClassifierManifest, loadClassifier } from './classifier.ts';
import { type QualityScores, scoreSamples } from './scores.ts';

/** Scores a trainer's generator with the project's classifier for its data set. */
export class QualityEvaluator {
  private constructor(
    private readonly classifier: Classifier,
    readonly manifest: ClassifierManifest,
  ) {}

  static async load(dataset: string, dir?: string): Promise<QualityEvaluator> {
    const { classifier, manifest } = await loadClassifier(dataset, dir);
    return new QualityEvaluator(classifier, manifest);
  }

  /** Generates `samples` images from the trainer's fixed evaluation noise and scores them. */
  evaluate(trainer: Pick<Trainer, 'evalSamples'>, samples: number): QualityScores {
    const { images, labels } = trainer.evalSamples(samples);
    const { features, predictions } = this.classifier.describe(images, samples);
    return scoreSamples(features, predictions, this.manifest.stats, labels);
  }

  dispose(): void {
    this.classifier.dispose();
  }
}
