/**
 * What the scale simulation reads of a sweep, straight from Redis (not through the API it measures):
 * trials' states and times and their jobs' `timestamp` and `processedOn`, pipelined; the queue's active count; INFO.
 */
import {
  createRedis,
  parseRedisConnection,
  type RedisClient,
  redisKeys,
  TRIAL_QUEUE,
  trialId,
} from '../../packages/shared/src/index.ts';
import { parseInfo } from './measure.ts';

/** One trial as the bench reads it. */
export interface TrialTimes {
  state: string;
  startedAt?: number;
  endedAt?: number;
  attempts: number;
  /** Its BullMQ job's `timestamp` (when the coordinator added it), if queued. */
  queuedAt?: number;
  /** Its BullMQ job's `processedOn` (when a worker took it), if taken. */
  processedOn?: number;
}

/** A client of one Redis server at `url`. */
export function redisAt(url: string): RedisClient {
  const conn = parseRedisConnection({ url });
  if (Array.isArray(conn)) throw new Error(`bad Redis URL: ${conn.map((i) => i.message).join('; ')}`);
  return createRedis({ redis: conn });
}

const num = (s: string | null | undefined) => (s ? Number(s) : undefined);

/** Reads sweep `sweepId`'s trials of a plain (unstaged, unsegmented) sweep: job id = trial id. */
export class SweepReader {
  private readonly keys;

  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
  ) {
    this.keys = redisKeys(prefix);
  }

  /** Trials 0..count-1 of the sweep (their ids follow from the sweep's), in index order. */
  async trials(sweepId: string, count: number): Promise<TrialTimes[]> {
    const pipe = this.redis.pipeline();
    for (let i = 0; i < count; i++) {
      const id = trialId(sweepId, i);
      pipe.hmget(this.keys.trial(id), 'state', 'startedAt', 'endedAt', 'attempts');
      pipe.hmget(`${this.prefix}:${TRIAL_QUEUE}:${id}`, 'timestamp', 'processedOn');
    }
    const res = (await pipe.exec()) ?? [];
    const out: TrialTimes[] = [];
    for (let i = 0; i < count; i++) {
      const [e1, fields] = res[2 * i]!;
      const [e2, job] = res[2 * i + 1]!;
      if (e1 || e2) throw e1 ?? e2;
      const [state, startedAt, endedAt, attempts] = fields as (string | null)[];
      const [timestamp, processedOn] = job as (string | null)[];
      out.push({
        state: state ?? 'missing',
        startedAt: num(startedAt),
        endedAt: num(endedAt),
        attempts: num(attempts) ?? 0,
        queuedAt: num(timestamp),
        processedOn: num(processedOn),
      });
    }
    return out;
  }

  /** The sweep's state field. */
  async sweepState(sweepId: string): Promise<string | undefined> {
    return (await this.redis.hget(this.keys.sweep(sweepId), 'state')) ?? undefined;
  }

  /** Jobs in BullMQ's active list (taken by a worker). */
  activeJobs(): Promise<number> {
    return this.redis.llen(`${this.prefix}:${TRIAL_QUEUE}:active`);
  }

  /** Workers registered by heartbeat. */
  workers(): Promise<number> {
    return this.redis.hlen(this.keys.workers);
  }

  /** `INFO [section]` as a map. */
  async info(section?: string): Promise<Map<string, string>> {
    return parseInfo(await (section ? this.redis.info(section) : this.redis.info()));
  }

  async close(): Promise<void> {
    await this.redis.quit().catch(() => {});
  }
}
