import type { AugmentationRecord } from './augmentation.ts';
import { type RedisKeys, redisKeys } from './keys.ts';
import type { RedisClient } from './redis.ts';

/**
 * Augmentation records in Redis: one JSON value per augmentation and a list of them per trial. The
 * coordinator creates a record when it queues the job; the worker that holds the job is its only writer
 * afterwards (BullMQ's lock), so read-modify-write updates do not race.
 */
export class AugmentationStore {
  readonly keys: RedisKeys;

  constructor(
    private readonly redis: RedisClient,
    prefix: string,
  ) {
    this.keys = redisKeys(prefix);
  }

  /** Writes a new record and lists it under its trial, atomically. */
  async create(record: AugmentationRecord): Promise<void> {
    await this.redis
      .multi()
      .set(this.keys.augmentation(record.id), JSON.stringify(record))
      .rpush(this.keys.trialAugmentations(record.trialId), record.id)
      .exec();
  }

  async get(id: string): Promise<AugmentationRecord | undefined> {
    const raw = await this.redis.get(this.keys.augmentation(id));
    return raw ? (JSON.parse(raw) as AugmentationRecord) : undefined;
  }

  /** A trial's augmentations, oldest first. */
  async ofTrial(trialId: string): Promise<AugmentationRecord[]> {
    const ids = await this.redis.lrange(this.keys.trialAugmentations(trialId), 0, -1);
    const records = await Promise.all(ids.map((id) => this.get(id)));
    return records.filter((r): r is AugmentationRecord => r !== undefined);
  }

  /**
   * Merges `fields` into the record (a field set to undefined is removed). Returns the new record, or
   * undefined when there is none.
   */
  async update(id: string, fields: Partial<AugmentationRecord>): Promise<AugmentationRecord | undefined> {
    const current = await this.get(id);
    if (!current) return undefined;
    const next = { ...current, ...fields };
    await this.redis.set(this.keys.augmentation(id), JSON.stringify(next));
    return next;
  }
}
