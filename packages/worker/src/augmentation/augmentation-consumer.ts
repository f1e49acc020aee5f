import { AUGMENTATION_QUEUE, AugmentationStore, type Logger, type RedisClient } from '@gantry/shared';
import { Worker } from 'bullmq';
import { type AugmentationRunnerDeps, runAugmentationAttempt } from './augmentation-runner.ts';

export interface AugmentationConsumerOptions extends Omit<AugmentationRunnerDeps, 'records'> {
  /** The worker's connection (records are written through it; BullMQ gets a duplicate, closed by close()). */
  redis: RedisClient;
  prefix: string;
  lockMs: number;
  log: Logger;
}

/**
 * The worker's consumer of augmentation jobs: one at a time per worker (each trains S x 3 classifiers in a
 * child process), beside its trials. close() stops taking jobs and gives a running one back to the queue.
 */
export class AugmentationConsumer {
  private readonly bull: Worker;
  private readonly bullRedis: RedisClient;
  private readonly running = new Set<AbortController>();
  private closing?: Promise<void>;

  constructor(o: AugmentationConsumerOptions) {
    const records = new AugmentationStore(o.redis, o.prefix);
    this.bullRedis = o.redis.duplicate();
    this.bull = new Worker(
      AUGMENTATION_QUEUE,
      async (job, token) => {
        const ctrl = new AbortController();
        this.running.add(ctrl);
        try {
          return await runAugmentationAttempt(job, token ?? '', ctrl.signal, { ...o, records });
        } finally {
          this.running.delete(ctrl);
        }
      },
      {
        connection: this.bullRedis,
        prefix: o.prefix,
        concurrency: 1,
        lockDuration: o.lockMs,
        stalledInterval: o.lockMs,
        autorun: true,
      },
    );
    this.bull.on('failed', (job, err) =>
      o.log.warn({ jobId: job?.id, err: err.message }, 'augmentation attempt failed'),
    );
    this.bull.on('error', (err) => o.log.error({ err }, 'augmentation queue error'));
  }

  /** Stops taking jobs; a running augmentation is stopped and queued again. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const ctrl of this.running) ctrl.abort();
      await this.bull.close();
      await this.bullRedis.quit().catch(() => {});
    })();
    return this.closing;
  }
}
