import { randomBytes } from 'node:crypto';
import {
  type CheckpointRef,
  decodeTrial,
  encodeTrial,
  trialId as makeTrialId,
  type QualityPoint,
  type RedisKeys,
  redisKeys,
  type SampleRef,
  type SearchEvent,
  type StageEvent,
  type SweepSpec,
  type SweepState,
  type TrialEvent,
  type TrialMetrics,
  type TrialRecord,
} from '@gantry/shared';
import type { Redis } from 'ioredis';
import type { PlannedTrial } from './planner/plan-sweep.ts';

/** A sweep as kept in Redis. */
export interface StoredSweep {
  id: string;
  name: string;
  state: SweepState;
  spec: SweepSpec;
  createdAt: number;
  endedAt?: number;
  trialIds: string[];
}

/** A planned trial's first record. */
function newTrial(
  sweepId: string,
  spec: SweepSpec,
  p: PlannedTrial,
  now: number,
  segment?: { segment: number; until?: number },
): TrialRecord {
  const t: TrialRecord = {
    id: makeTrialId(sweepId, p.index),
    sweepId,
    index: p.index,
    state: 'queued',
    params: p.params,
    seed: p.seed,
    step: 0,
    steps: spec.budget.steps,
    attempts: 0,
    createdAt: now,
    ...(segment
      ? { segment: segment.segment, ...(segment.until !== undefined ? { until: segment.until } : {}) }
      : {}),
  };
  const first = spec.stages?.[0];
  if (first && spec.stages) {
    t.stage = {
      index: 0,
      count: spec.stages.length,
      ...(first.resolution !== undefined ? { resolution: first.resolution } : {}),
      ...(first.phase ? { phase: first.phase } : {}),
      alpha: 1,
      done: 0,
    };
  }
  return t;
}

/** Redis persistence of sweeps and trials; the coordinator's only state, so a restart carries on. */
export class SweepStore {
  readonly keys: RedisKeys;

  constructor(
    readonly redis: Redis,
    prefix: string,
  ) {
    this.keys = redisKeys(prefix);
  }

  private get activeKey(): string {
    return `${this.keys.sweeps}:active`;
  }

  /**
   * Writes a new sweep and its planned trials atomically; returns the stored sweep. `segment` gives the
   * first segment of a trial trained in segments (README, "Adaptive search").
   */
  async create(
    spec: SweepSpec,
    plan: PlannedTrial[],
    segment?: (p: PlannedTrial) => { segment: number; until?: number } | undefined,
  ): Promise<StoredSweep> {
    const id = `${spec.name.slice(0, 40)}-${randomBytes(4).toString('hex')}`;
    const now = Date.now();
    const trialIds = plan.map((p) => makeTrialId(id, p.index));
    const tx = this.redis.multi();
    tx.hset(this.keys.sweep(id), {
      id,
      name: spec.name,
      state: 'queued',
      spec: JSON.stringify(spec),
      createdAt: String(now),
      trialIds: JSON.stringify(trialIds),
    });
    for (const p of plan)
      tx.hset(
        this.keys.trial(makeTrialId(id, p.index)),
        encodeTrial(newTrial(id, spec, p, now, segment?.(p))),
      );
    tx.zadd(this.keys.sweeps, now, id);
    tx.sadd(this.activeKey, id);
    await tx.exec();
    return { id, name: spec.name, state: 'queued', spec, createdAt: now, trialIds };
  }

  /**
   * Adds planned trials to a stored sweep (TPE's suggestions, `gantry extend`), with the sweep's spec as
   * it is now (an extended budget), and reopens an ended sweep. One writer: the scheduler's passes.
   */
  async addTrials(
    sweep: StoredSweep,
    plan: PlannedTrial[],
    segment?: (p: PlannedTrial) => { segment: number; until?: number } | undefined,
  ): Promise<string[]> {
    const now = Date.now();
    const ids = plan.map((p) => makeTrialId(sweep.id, p.index));
    const trialIds = [...sweep.trialIds, ...ids.filter((i) => !sweep.trialIds.includes(i))];
    const tx = this.redis.multi();
    for (const p of plan)
      tx.hset(
        this.keys.trial(makeTrialId(sweep.id, p.index)),
        encodeTrial(newTrial(sweep.id, sweep.spec, p, now, segment?.(p))),
      );
    tx.hset(this.keys.sweep(sweep.id), {
      trialIds: JSON.stringify(trialIds),
      spec: JSON.stringify(sweep.spec),
    });
    await tx.exec();
    sweep.trialIds = trialIds;
    return ids;
  }

  /** Stores a changed spec (an extended budget) and, for an ended sweep, makes it active again. */
  async reopen(sweep: StoredSweep): Promise<void> {
    const tx = this.redis.multi().hset(this.keys.sweep(sweep.id), 'spec', JSON.stringify(sweep.spec));
    if (sweep.state === 'completed' || sweep.state === 'failed') {
      tx.hset(this.keys.sweep(sweep.id), 'state', 'running').hdel(this.keys.sweep(sweep.id), 'endedAt');
      tx.sadd(this.activeKey, sweep.id);
      sweep.state = 'running';
      sweep.endedAt = undefined;
    }
    await tx.exec();
  }

  /** The sweep's search decisions (SearchEvent), in the order they were made. */
  async searchEvents(id: string): Promise<SearchEvent[]> {
    return (await this.redis.lrange(this.keys.sweepSearch(id), 0, -1)).map(
      (r) => JSON.parse(r) as SearchEvent,
    );
  }

  /** A trial's quality evaluations, oldest first. */
  async qualityHistory(id: string): Promise<QualityPoint[]> {
    return (await this.redis.lrange(this.keys.trialQuality(id), 0, -1)).map(
      (r) => JSON.parse(r) as QualityPoint,
    );
  }

  /** Quality histories of many trials in one round trip, by trial id. */
  async qualityHistories(ids: readonly string[]): Promise<Map<string, QualityPoint[]>> {
    const pipe = this.redis.pipeline();
    for (const id of ids) pipe.lrange(this.keys.trialQuality(id), 0, -1);
    const res = (await pipe.exec()) ?? [];
    const out = new Map<string, QualityPoint[]>();
    res.forEach(([err, raw], i) => {
      if (err) throw err;
      out.set(
        ids[i]!,
        (raw as string[]).map((r) => JSON.parse(r) as QualityPoint),
      );
    });
    return out;
  }

  async get(id: string): Promise<StoredSweep | undefined> {
    const h = await this.redis.hgetall(this.keys.sweep(id));
    if (!h.id) return undefined;
    return {
      id: h.id,
      name: h.name ?? '',
      state: (h.state ?? 'queued') as SweepState,
      spec: JSON.parse(h.spec ?? '{}') as SweepSpec,
      createdAt: Number(h.createdAt),
      endedAt: h.endedAt ? Number(h.endedAt) : undefined,
      trialIds: JSON.parse(h.trialIds ?? '[]') as string[],
    };
  }

  /** Newest first. */
  async list(limit = 100): Promise<StoredSweep[]> {
    const ids = await this.redis.zrevrange(this.keys.sweeps, 0, limit - 1);
    const sweeps = await Promise.all(ids.map((id) => this.get(id)));
    return sweeps.filter((s): s is StoredSweep => s !== undefined);
  }

  async activeIds(): Promise<string[]> {
    return this.redis.smembers(this.activeKey);
  }

  async setSweepState(id: string, state: SweepState): Promise<void> {
    const tx = this.redis.multi().hset(this.keys.sweep(id), 'state', state);
    if (state === 'completed' || state === 'failed' || state === 'cancelled') {
      tx.hset(this.keys.sweep(id), 'endedAt', String(Date.now())).srem(this.activeKey, id);
    }
    await tx.exec();
  }

  async trial(id: string): Promise<(TrialRecord & { dispatched: boolean }) | undefined> {
    const h = await this.redis.hgetall(this.keys.trial(id));
    const t = decodeTrial(h);
    return t ? { ...t, dispatched: h.dispatched === '1' } : undefined;
  }

  async trials(ids: readonly string[]): Promise<(TrialRecord & { dispatched: boolean })[]> {
    const pipe = this.redis.pipeline();
    for (const id of ids) pipe.hgetall(this.keys.trial(id));
    const res = (await pipe.exec()) ?? [];
    const out: (TrialRecord & { dispatched: boolean })[] = [];
    for (const [err, h] of res) {
      if (err) throw err;
      const rec = h as Record<string, string>;
      const t = decodeTrial(rec);
      if (t) out.push({ ...t, dispatched: rec.dispatched === '1' });
    }
    return out;
  }

  async updateTrial(id: string, fields: Partial<TrialRecord> & { dispatched?: boolean }): Promise<void> {
    const { dispatched, ...rest } = fields;
    const enc = encodeTrial(rest);
    if (dispatched !== undefined) enc.dispatched = dispatched ? '1' : '0';
    await this.redis.hset(this.keys.trial(id), enc);
  }

  async history(id: string, limit = 2000): Promise<TrialMetrics[]> {
    const raw = await this.redis.lrange(this.keys.trialHistory(id), -limit, -1);
    return raw.map((r) => JSON.parse(r) as TrialMetrics);
  }

  async checkpoints(id: string): Promise<CheckpointRef[]> {
    return (await this.redis.lrange(this.keys.trialCheckpoints(id), 0, -1)).map(
      (r) => JSON.parse(r) as CheckpointRef,
    );
  }

  async samples(id: string): Promise<SampleRef[]> {
    return (await this.redis.lrange(this.keys.trialSamples(id), 0, -1)).map(
      (r) => JSON.parse(r) as SampleRef,
    );
  }

  /** A staged trial's stage starts and ends, oldest first. */
  async stageEvents(id: string): Promise<StageEvent[]> {
    return (await this.redis.lrange(this.keys.trialStages(id), 0, -1)).map(
      (r) => JSON.parse(r) as StageEvent,
    );
  }

  /** The trial's attempt log (TrialEvent), oldest first. */
  async events(id: string): Promise<TrialEvent[]> {
    return (await this.redis.lrange(this.keys.trialEvents(id), 0, -1)).map(
      (r) => JSON.parse(r) as TrialEvent,
    );
  }
}
