import { DETECTORS, type HealthDetection, type StepMetrics, type TrialQuality } from '@gantry/shared';

/** What a detection can do, as counted (a policy of `off` counts nothing). */
const ACTIONS = ['stop', 'restart', 'warn'] as const;

import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';

/** A worker's Prometheus registry. Per-trial series are removed when the trial leaves this worker. */
export class WorkerMetrics {
  readonly registry = new Registry();
  readonly info = new Gauge({
    name: 'gantry_worker_info',
    help: 'Always 1; labels describe the worker',
    labelNames: ['worker', 'backend', 'device'] as const,
    registers: [this.registry],
  });
  readonly busy = new Gauge({
    name: 'gantry_worker_busy_trials',
    help: 'Trials running on this worker',
    registers: [this.registry],
  });
  readonly capacity = new Gauge({
    name: 'gantry_worker_concurrency',
    help: 'Trials this worker runs at once',
    registers: [this.registry],
  });
  readonly outcomes = new Counter({
    name: 'gantry_worker_trial_attempts_total',
    help: 'Trial attempts ended on this worker, by outcome',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly datasetFetches = new Counter({
    name: 'gantry_worker_dataset_fetches_total',
    help: 'Data set versions this worker brought into the node cache (result downloaded) or found there (cached)',
    labelNames: ['dataset', 'result'] as const,
    registers: [this.registry],
  });
  private readonly trialLabels = ['sweep', 'trial'] as const;
  /** Gauges labelled by sweep and trial only (trialGauge), removed together when the trial leaves. */
  private readonly perTrial: Gauge<'sweep' | 'trial'>[] = [];
  readonly step = this.trialGauge('gantry_trial_step', 'Current training step');
  readonly dLoss = this.trialGauge('gantry_trial_d_loss', 'Discriminator loss');
  readonly gLoss = this.trialGauge('gantry_trial_g_loss', 'Generator loss');
  readonly dReal = this.trialGauge('gantry_trial_d_real', 'Mean D(x) on real images');
  readonly dFake = this.trialGauge('gantry_trial_d_fake', 'Mean D(G(z)) on generated images');
  readonly imagesPerSec = this.trialGauge(
    'gantry_trial_images_per_second',
    'Training throughput (real images per second)',
  );

  readonly gradNorm = new Gauge({
    name: 'gantry_trial_grad_norm',
    help: "Global L2 norm of a network's gradient at the last step (network g or d)",
    labelNames: [...this.trialLabels, 'network'] as const,
    registers: [this.registry],
  });
  readonly lastStepTime = this.trialGauge(
    'gantry_trial_last_step_timestamp_seconds',
    'Unix time of the last reported training step',
  );
  readonly fld = this.trialGauge(
    'gantry_trial_fld',
    'Frechet distance of classifier features to the real data (last evaluation; lower is better)',
  );
  readonly coverage = this.trialGauge(
    'gantry_trial_class_coverage',
    "Fraction of the data's classes the generated samples cover (last evaluation)",
  );
  readonly classKl = this.trialGauge(
    'gantry_trial_class_kl',
    "KL of the generated class histogram from the data's, nats (last evaluation)",
  );
  readonly diversity = this.trialGauge(
    'gantry_trial_diversity_ratio',
    "Generated feature diversity over the real data's (last evaluation)",
  );
  readonly condAccuracy = this.trialGauge(
    'gantry_trial_cond_accuracy',
    'cGAN: classifier accuracy on the conditioned class (last evaluation)',
  );
  /** The image-conditioned families' scores on the held-out split (last evaluation). */
  readonly imageScores = {
    psnr: this.trialGauge('gantry_trial_psnr', 'srgan, pix2pix: PSNR of the outputs against the targets, dB'),
    ssim: this.trialGauge('gantry_trial_ssim', 'srgan, pix2pix: SSIM of the outputs against the targets'),
    psnr_bicubic: this.trialGauge('gantry_trial_psnr_bicubic', 'srgan: PSNR of bicubic upsampling, dB'),
    ssim_bicubic: this.trialGauge('gantry_trial_ssim_bicubic', 'srgan: SSIM of bicubic upsampling'),
    l1: this.trialGauge('gantry_trial_l1', 'pix2pix: mean |G(A) - B| on the [-1, 1] scale'),
    class_accuracy: this.trialGauge(
      'gantry_trial_class_accuracy',
      "pix2pix: the set's classifier's accuracy on G(A)",
    ),
    class_accuracy_real: this.trialGauge(
      'gantry_trial_class_accuracy_real',
      "pix2pix: the set's classifier's accuracy on B",
    ),
  } as const;
  readonly stage = this.trialGauge(
    'gantry_trial_stage',
    'Staged models (progan, srgan): the stage being trained, 0-based',
  );
  readonly resolution = this.trialGauge(
    'gantry_trial_resolution',
    'Staged models: image size of the stage being trained (pixels per side)',
  );
  readonly alpha = this.trialGauge(
    'gantry_trial_alpha',
    "Staged models: fade-in factor of the stage's new layers (0 to 1 over the fade steps, then 1)",
  );
  readonly augmentP = this.trialGauge(
    'gantry_trial_augment_p',
    'DiffAugment: probability each transform is applied to each image (adaptive with ADA)',
  );
  readonly augmentRt = this.trialGauge(
    'gantry_trial_augment_rt',
    "DiffAugment with ADA: the last interval's overfitting heuristic r_t = E[sign(D(x))]",
  );
  readonly evalStep = this.trialGauge('gantry_trial_eval_step', 'Step of the last quality evaluation');
  readonly restarts = this.trialGauge('gantry_trial_restarts', 'Health restarts of the trial so far');
  readonly detections = new Counter({
    name: 'gantry_trial_detections_total',
    help: 'Health detections of a trial on this worker, by detector and action',
    labelNames: [...this.trialLabels, 'detector', 'action'] as const,
    registers: [this.registry],
  });
  readonly detectionStep = new Gauge({
    name: 'gantry_trial_detection_step',
    help: 'Step of the latest health detection of a trial, by detector (the reason is in the API and the log)',
    labelNames: [...this.trialLabels, 'detector'] as const,
    registers: [this.registry],
  });
  readonly workerDetections = new Counter({
    name: 'gantry_worker_health_detections_total',
    help: 'Health detections on this worker, by detector and action (kept when trials leave)',
    labelNames: ['detector', 'action'] as const,
    registers: [this.registry],
  });
  /** Detector/action pairs each trial has counted (`sweep/trial` -> labels), to remove them too. */
  private readonly detectionLabels = new Map<string, Set<string>>();

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'gantry_worker_' });
    // Every detector/action pair exists from the start, at 0, so rates and dashboards see them.
    for (const detector of DETECTORS)
      for (const action of ACTIONS) this.workerDetections.inc({ detector, action }, 0);
  }

  /** Creates a trial's health series at 0 when it starts on this worker (restarts as recorded so far). */
  startTrial(sweep: string, trial: string, restarts: number): void {
    this.restarts.set({ sweep, trial }, restarts);
    const seen = new Set<string>();
    for (const detector of DETECTORS) {
      for (const action of ACTIONS) {
        this.detections.inc({ sweep, trial, detector, action }, 0);
        seen.add(JSON.stringify([detector, action]));
      }
    }
    this.detectionLabels.set(`${sweep}/${trial}`, seen);
  }

  private trialGauge(name: string, help: string): Gauge<'sweep' | 'trial'> {
    const gauge = new Gauge({ name, help, labelNames: this.trialLabels, registers: [this.registry] });
    this.perTrial.push(gauge);
    return gauge;
  }

  /** Sets a staged trial's stage series when one of its stages starts on this worker. */
  startStage(
    sweep: string,
    trial: string,
    stage: number,
    resolution: number | undefined,
    alpha: number,
  ): void {
    this.stage.set({ sweep, trial }, stage);
    if (resolution !== undefined) this.resolution.set({ sweep, trial }, resolution);
    this.alpha.set({ sweep, trial }, alpha);
  }

  observe(sweep: string, trial: string, m: StepMetrics): void {
    const l = { sweep, trial };
    this.step.set(l, m.step);
    this.dLoss.set(l, m.d_loss);
    this.gLoss.set(l, m.g_loss);
    this.dReal.set(l, m.d_real);
    this.dFake.set(l, m.d_fake);
    this.imagesPerSec.set(l, m.images_per_sec);
    if (m.g_grad_norm !== undefined) this.gradNorm.set({ ...l, network: 'g' }, m.g_grad_norm);
    if (m.d_grad_norm !== undefined) this.gradNorm.set({ ...l, network: 'd' }, m.d_grad_norm);
    if (m.resolution !== undefined) this.resolution.set(l, m.resolution);
    if (m.alpha !== undefined) this.alpha.set(l, m.alpha);
    if (m.augment_p !== undefined) this.augmentP.set(l, m.augment_p);
    if (m.augment_rt !== undefined) this.augmentRt.set(l, m.augment_rt);
    this.lastStepTime.set(l, Date.now() / 1000);
  }

  observeQuality(sweep: string, trial: string, q: TrialQuality): void {
    const l = { sweep, trial };
    this.fld.set(l, q.fld);
    if (q.class_coverage !== undefined) this.coverage.set(l, q.class_coverage);
    if (q.class_kl !== undefined) this.classKl.set(l, q.class_kl);
    this.diversity.set(l, q.diversity_ratio);
    if (q.cond_accuracy !== undefined) this.condAccuracy.set(l, q.cond_accuracy);
    for (const [name, gauge] of Object.entries(this.imageScores)) {
      const v = q[name as keyof typeof this.imageScores];
      if (v !== undefined) gauge.set(l, v);
    }
    this.evalStep.set(l, q.step);
  }

  observeDetection(sweep: string, trial: string, d: HealthDetection, restarts: number): void {
    this.detections.inc({ sweep, trial, detector: d.detector, action: d.action });
    this.detectionStep.set({ sweep, trial, detector: d.detector }, d.step);
    const key = `${sweep}/${trial}`;
    const seen = this.detectionLabels.get(key) ?? new Set<string>();
    seen.add(JSON.stringify([d.detector, d.action]));
    this.detectionLabels.set(key, seen);
    this.workerDetections.inc({ detector: d.detector, action: d.action });
    this.restarts.set({ sweep, trial }, restarts);
  }

  /** Drops every series of a trial (metric hygiene: finished trials do not linger). */
  forget(sweep: string, trial: string): void {
    for (const g of this.perTrial) g.remove({ sweep, trial });
    for (const network of ['g', 'd']) this.gradNorm.remove({ sweep, trial, network });
    for (const detector of DETECTORS) this.detectionStep.remove({ sweep, trial, detector });
    const key = `${sweep}/${trial}`;
    for (const pair of this.detectionLabels.get(key) ?? []) {
      const [detector, action] = JSON.parse(pair) as [string, string];
      this.detections.remove({ sweep, trial, detector, action });
    }
    this.detectionLabels.delete(key);
  }
}
