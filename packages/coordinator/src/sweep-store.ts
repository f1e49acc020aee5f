import { randomBytes } from 'node:crypto';
import {
  type CheckpointRef,
  decodeTrial,
  encodeTrial,
  trialId as makeTrialId,
  type QualityPoint,
  type RedisClient,
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
import type { PlannedTrial } from './planner/plan-sweep.ts';

/**
 * Writes of the scheduling coordinator, fenced by its leader lease (leader-lease.ts): applied only while
 * the lease key holds `token` ('' for a scheduler without a lease: one coordinator in a test). KEYS[1] the
 * lease, KEYS[2] the dirty set, KEYS[3..] trial hashes; ARGV[1] the token, then for each hash a field count
 * and its field/value pairs. A trial ended from outside (cancelled, stopped) is left alone, and so is the
 * state of one that has ended at all; such a trial is put in the dirty set, so that the next pass reads
 * what it is. Returns 1, or -1 when the lease has moved on.
 */
const FENCED_TRIALS = `
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local ended = { completed = true, failed = true, cancelled = true, stopped = true, diverged = true }
local a = 2
for k = 3, #KEYS do
  local n = tonumber(ARGV[a])
  local st = redis.call('HGET', KEYS[k], 'state')
  local skip = st == 'cancelled' or st == 'stopped'
  if not skip and st and ended[st] then
    for i = 1, n do if ARGV[a + 2 * i - 1] == 'state' then skip = true end end
  end
  if skip then
    redis.call('SADD', KEYS[2], string.match(KEYS[k], ':trial:(.*)$'))
  else
    for i = 1, n do redis.call('HSET', KEYS[k], ARGV[a + 2 * i - 1], ARGV[a + 2 * i]) end
  end
  a = a + 1 + 2 * n
end
return 1
`;

/**
 * A sweep's state, fenced like FENCED_TRIALS: KEYS lease, sweep hash, active set; ARGV token, state, id,
 * ended-at ('' unless it ends), the sweep's version the scheduler decided on. Refused (0) over a cancelled
 * sweep, and an end when the version moved on (trials added, `gantry extend` elsewhere).
 */
const FENCED_SWEEP_STATE = `
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if redis.call('HGET', KEYS[2], 'state') == 'cancelled' then return 0 end
if ARGV[4] ~= '' and tonumber(redis.call('HGET', KEYS[2], 'version') or '0') ~= tonumber(ARGV[5]) then return 0 end
redis.call('HSET', KEYS[2], 'state', ARGV[2])
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[2], 'endedAt', ARGV[4])
  redis.call('SREM', KEYS[3], ARGV[3])
end
return 1
`;

/** Takes up to ARGV[2] entries of the dirty set (KEYS[2]), fenced by the lease (KEYS[1], ARGV[1]). */
const TAKE_DIRTY = `
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
return redis.call('SPOP', KEYS[2], ARGV[2])
`;

/**
 * Stores an extended spec (ARGV[1]), reopens an ended sweep (completed or failed: running again, active),
 * bumps its version and marks it dirty (ARGV[3]) in one script. KEYS sweep hash, active set, dirty set;
 * ARGV[2] the sweep id. Returns the state the sweep is in now.
 */
const REOPEN = `
redis.call('HSET', KEYS[1], 'spec', ARGV[1])
local st = redis.call('HGET', KEYS[1], 'state')
if st == 'completed' or st == 'failed' then
  redis.call('HSET', KEYS[1], 'state', 'running')
  redis.call('HDEL', KEYS[1], 'endedAt')
  st = 'running'
end
if st ~= 'cancelled' then redis.call('SADD', KEYS[2], ARGV[2]) end
redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('SADD', KEYS[3], ARGV[3])
return st
`;

/** Trials read per pipeline by SweepStore.trials (some 12 ms of decoding each on the 2-core dev machine). */
const TRIAL_READ_CHUNK = 100;

/** The scheduling coordinator lost its lease: another one schedules now; this one's writes were refused. */
export class LeaseLostError extends Error {
  constructor() {
    super('the leader lease has moved to another coordinator');
    this.name = 'LeaseLostError';
  }
}

/** Marks a sweep's record or trial list as changed in the scheduler's dirty set (keys.dirty). */
export function sweepMarker(sweepId: string): string {
  return `sweep:${sweepId}`;
}

/** A sweep as kept in Redis. */
export interface StoredSweep {
  id: string;
  name: string;
  state: SweepState;
  spec: SweepSpec;
  createdAt: number;
  endedAt?: number;
  trialIds: string[];
  /** Bumped whenever trials are added or the spec changes: a scheduler never ends a sweep it saw older. */
  version?: number;
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
    readonly redis: RedisClient,
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
    return (await this.createWithTrials(spec, plan, segment)).sweep;
  }

  /** create(), also returning the trial records written (the scheduler adopts them without reading them back). */
  async createWithTrials(
    spec: SweepSpec,
    plan: PlannedTrial[],
    segment?: (p: PlannedTrial) => { segment: number; until?: number } | undefined,
  ): Promise<{ sweep: StoredSweep; trials: TrialRecord[] }> {
    const id = `${spec.name.slice(0, 40)}-${randomBytes(4).toString('hex')}`;
    const now = Date.now();
    const trialIds = plan.map((p) => makeTrialId(id, p.index));
    const trials = plan.map((p) => newTrial(id, spec, p, now, segment?.(p)));
    const tx = this.redis.multi();
    tx.hset(this.keys.sweep(id), {
      id,
      name: spec.name,
      state: 'queued',
      spec: JSON.stringify(spec),
      createdAt: String(now),
      trialIds: JSON.stringify(trialIds),
    });
    for (const t of trials) tx.hset(this.keys.trial(t.id), encodeTrial(t));
    tx.zadd(this.keys.sweeps, now, id);
    tx.sadd(this.activeKey, id);
    await tx.exec();
    return { sweep: { id, name: spec.name, state: 'queued', spec, createdAt: now, trialIds }, trials };
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
    // The spec is the extend path's to write (reopen): a TPE suggestion never overwrites a newer budget.
    tx.hset(this.keys.sweep(sweep.id), 'trialIds', JSON.stringify(trialIds));
    tx.hincrby(this.keys.sweep(sweep.id), 'version', 1);
    const res = await tx.exec();
    sweep.trialIds = trialIds;
    sweep.version = Number(res?.at(-1)?.[1] ?? (sweep.version ?? 0) + 1);
    return ids;
  }

  /**
   * Stores a changed spec (an extended budget) and, for an ended sweep, makes it active again - atomically,
   * so a scheduling coordinator elsewhere that ends the sweep meanwhile cannot leave it inactive (its end is
   * refused: the version moved on) - and tells that coordinator to read the sweep again.
   */
  async reopen(sweep: StoredSweep): Promise<void> {
    const state = (await this.redis.eval(
      REOPEN,
      3,
      this.keys.sweep(sweep.id),
      this.activeKey,
      this.keys.dirty,
      JSON.stringify(sweep.spec),
      sweep.id,
      sweepMarker(sweep.id),
    )) as SweepState;
    if (state !== sweep.state) {
      sweep.state = state;
      sweep.endedAt = undefined;
    }
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
      ...(h.version ? { version: Number(h.version) } : {}),
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

  /**
   * Takes up to `max` entries of the dirty set (trial ids and sweep markers); each is taken once. With a
   * lease `token`, only while it holds (a coordinator that lost it takes nothing the new leader needs).
   * @throws LeaseLostError
   */
  async takeDirty(token = '', max = 10_000): Promise<string[]> {
    const res = (await this.redis.eval(
      TAKE_DIRTY,
      2,
      this.keys.leader,
      this.keys.dirty,
      token,
      String(max),
    )) as string[] | number;
    if (res === -1) throw new LeaseLostError();
    return res as string[];
  }

  /** Tells the scheduling coordinator (maybe another process) that these trials or sweeps changed. */
  async markDirty(entries: readonly string[]): Promise<void> {
    if (entries.length > 0) await this.redis.sadd(this.keys.dirty, ...entries);
  }

  /**
   * Sets fields of many trials in one script, fenced by the leader lease `token`.
   * @throws LeaseLostError when the lease has moved to another coordinator (nothing written)
   */
  async updateTrialsFenced(
    token: string,
    updates: readonly { id: string; fields: Partial<TrialRecord> & { dispatched?: boolean } }[],
  ): Promise<void> {
    if (updates.length === 0) return;
    const args: string[] = [token];
    for (const u of updates) {
      const { dispatched, ...rest } = u.fields;
      const enc = encodeTrial(rest);
      if (dispatched !== undefined) enc.dispatched = dispatched ? '1' : '0';
      const flat = Object.entries(enc).flat();
      args.push(String(flat.length / 2), ...flat);
    }
    const res = (await this.redis.eval(
      FENCED_TRIALS,
      2 + updates.length,
      this.keys.leader,
      this.keys.dirty,
      ...updates.map((u) => this.keys.trial(u.id)),
      ...args,
    )) as number;
    if (res !== 1) throw new LeaseLostError();
  }

  /**
   * setSweepState, fenced by the leader lease `token`, for the sweep at `version`. Returns false when
   * refused: the sweep was cancelled, or (an end) its version moved on; it must be read again.
   * @throws LeaseLostError (nothing written)
   */
  async setSweepStateFenced(token: string, id: string, state: SweepState, version = 0): Promise<boolean> {
    const ended = state === 'completed' || state === 'failed' || state === 'cancelled';
    const res = (await this.redis.eval(
      FENCED_SWEEP_STATE,
      3,
      this.keys.leader,
      this.keys.sweep(id),
      this.activeKey,
      token,
      state,
      id,
      ended ? String(Date.now()) : '',
      String(version),
    )) as number;
    if (res === -1) throw new LeaseLostError();
    return res === 1;
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

  /**
   * Many trials, in order, read in pipelined chunks of TRIAL_READ_CHUNK: between chunks the process goes
   * back to its event loop, so reading a 10,000-trial sweep for the API never holds the scheduler's passes
   * up for the whole read.
   */
  async trials(ids: readonly string[]): Promise<(TrialRecord & { dispatched: boolean })[]> {
    const out: (TrialRecord & { dispatched: boolean })[] = [];
    for (let from = 0; from < ids.length; from += TRIAL_READ_CHUNK) {
      const pipe = this.redis.pipeline();
      for (const id of ids.slice(from, from + TRIAL_READ_CHUNK)) pipe.hgetall(this.keys.trial(id));
      const res = (await pipe.exec()) ?? [];
      for (const [err, h] of res) {
        if (err) throw err;
        const rec = h as Record<string, string>;
        const t = decodeTrial(rec);
        if (t) out.push({ ...t, dispatched: rec.dispatched === '1' });
      }
      if (from + TRIAL_READ_CHUNK < ids.length) await new Promise((r) => setImmediate(r));
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
