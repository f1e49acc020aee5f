import {
  type CheckpointRef,
  checkpointOrder,
  encodeTrial,
  type QualityPoint,
  type RedisClient,
  type RedisKeys,
  type SampleRef,
  type StageEvent,
  type TrialEvent,
  type TrialMetrics,
  type TrialRecord,
} from '@gantry/shared';

/**
 * Every write a worker makes to a trial's state is fenced by the BullMQ job lock: it happens only while
 * the lock key still holds this worker's token, and never after the coordinator ended the trial (state
 * `cancelled`, or `stopped` by a scheduler). A worker that lost its lock (stalled, then taken over)
 * therefore cannot move the trial's latest checkpoint or overwrite the new holder's progress, and one that
 * has not yet heard of a stop cannot write the trial back to running or completed.
 *
 * Returns 1 applied, 0 refused as stale (checkpoint not newer), -1 lock lost, -2 trial ended (cancelled or
 * stopped), -3 no such trial (a job the coordinator did not create).
 *
 * A write the scheduler must act on (a new state, a stage's end, an evaluation) also adds the trial to the
 * scheduler's dirty set in the same script, so a pass reads only the trials that changed.
 */
const ENDED = `
local state = redis.call('HGET', KEYS[2], 'state')
if state == 'cancelled' or state == 'stopped' then return -2 end
`;

const FENCED_UPDATE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if redis.call('EXISTS', KEYS[2]) == 0 then return -3 end
${ENDED}local n = tonumber(ARGV[2])
local dirty = false
for i = 1, n do
  local f = ARGV[2 + 2 * i - 1]
  local v = ARGV[2 + 2 * i]
  if f == 'state' or f == 'pausedAt' or f == 'summary' then dirty = true end
  if f == 'stage' and not dirty then
    -- Progress rewrites a staged trial's stage record (its fade-in alpha): only a new stage, or one done, counts.
    local old = redis.call('HGET', KEYS[2], 'stage')
    if not old then
      dirty = true
    else
      local o, s = cjson.decode(old), cjson.decode(v)
      if o.index ~= s.index or o.done ~= s.done then dirty = true end
    end
  end
  redis.call('HSET', KEYS[2], f, v)
end
local rest = 3 + 2 * n
if ARGV[rest] ~= '' then redis.call('RPUSH', KEYS[3], ARGV[rest]) end
if ARGV[rest + 1] ~= '' then redis.call('HINCRBY', KEYS[2], ARGV[rest + 1], 1) end
if ARGV[rest + 2] ~= '' then redis.call('RPUSH', KEYS[4], ARGV[rest + 2]) end
if ARGV[rest + 3] ~= '' then redis.call('RPUSH', KEYS[5], ARGV[rest + 3]) end
if ARGV[rest + 4] ~= '' then
  redis.call('RPUSH', KEYS[6], ARGV[rest + 4])
  dirty = true
end
if dirty then redis.call('SADD', KEYS[7], ARGV[rest + 5]) end
return 1
`;

/**
 * Moves the checkpoint pointer back to an older checkpoint (or clears it: ARGV[2] = -1) because the newer
 * one cannot be read; the only write that lowers the pointer, fenced like the others, and refused (0) unless
 * the pointer still names the checkpoint that was found unreadable (ARGV[6]).
 */
const REWIND_CHECKPOINT = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if redis.call('EXISTS', KEYS[2]) == 0 then return -3 end
${ENDED}local cur = redis.call('HGET', KEYS[2], 'latestCheckpoint')
if not cur or cjson.decode(cur).manifestKey ~= ARGV[6] then return 0 end
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[2], 'latestCheckpoint')
  redis.call('HSET', KEYS[2], 'checkpointOrder', '-1')
else
  redis.call('HSET', KEYS[2], 'checkpointOrder', ARGV[2], 'latestCheckpoint', ARGV[3])
end
redis.call('HSET', KEYS[2], 'step', ARGV[4], 'resumedFrom', ARGV[4])
redis.call('RPUSH', KEYS[3], ARGV[5])
return 1
`;

const COMMIT_CHECKPOINT = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if redis.call('EXISTS', KEYS[2]) == 0 then return -3 end
${ENDED}local cur = tonumber(redis.call('HGET', KEYS[2], 'checkpointOrder') or '-1')
if cur >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[2], 'checkpointOrder', ARGV[2], 'latestCheckpoint', ARGV[3])
redis.call('RPUSH', KEYS[3], ARGV[3])
redis.call('RPUSH', KEYS[4], ARGV[4])
return 1
`;

export type FenceResult = 'ok' | 'stale' | 'lock-lost' | 'cancelled' | 'missing';
const RESULT: Record<number, FenceResult> = {
  1: 'ok',
  0: 'stale',
  [-1]: 'lock-lost',
  [-2]: 'cancelled',
  [-3]: 'missing',
};

/** What else one fenced {@link TrialReporter.update} writes besides the trial's fields. */
export interface UpdateExtras {
  /** A point appended to the trial's step history. */
  history?: TrialMetrics;
  /** A counter field of the trial hash to increment. */
  increment?: keyof TrialRecord;
  /** Staged trials: an event appended to the stage log. */
  stageEvent?: StageEvent;
  /** An event appended to the trial's attempt log. */
  event?: TrialEvent;
  /** A point appended to the trial's quality history (with the evaluation it records). */
  quality?: QualityPoint;
}

/** Fenced writes of one job attempt to one trial's Redis state. */
export class TrialReporter {
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
    private readonly jobId: string,
    private readonly token: string,
    private readonly trialId: string,
  ) {}

  /**
   * Sets fields of the trial hash and, in the same fenced write, whatever `extras` asks: a history point,
   * a counter increment, a stage event, an attempt event, a quality point.
   */
  async update(fields: Partial<TrialRecord>, extras: UpdateExtras = {}): Promise<FenceResult> {
    const flat = Object.entries(encodeTrial(fields)).flat();
    const json = (v: unknown) => (v === undefined ? '' : JSON.stringify(v));
    const res = (await this.redis.eval(
      FENCED_UPDATE,
      7,
      this.keys.jobLock(this.jobId),
      this.keys.trial(this.trialId),
      this.keys.trialHistory(this.trialId),
      this.keys.trialStages(this.trialId),
      this.keys.trialEvents(this.trialId),
      this.keys.trialQuality(this.trialId),
      this.keys.dirty,
      this.token,
      String(flat.length / 2),
      ...flat,
      json(extras.history),
      extras.increment ?? '',
      json(extras.stageEvent),
      json(extras.event),
      json(extras.quality),
      this.trialId,
    )) as number;
    return RESULT[res] ?? 'lock-lost';
  }

  /**
   * Points the trial back from `from`, which cannot be read, to `ref` (undefined: no checkpoint, train from
   * scratch), and records why (`event`, a `fallback`). Sets `step` and `resumedFrom`. 'stale' when the
   * pointer has moved off `from` meanwhile.
   */
  async rewindCheckpoint(
    from: CheckpointRef,
    ref: CheckpointRef | undefined,
    event: TrialEvent,
  ): Promise<FenceResult> {
    const res = (await this.redis.eval(
      REWIND_CHECKPOINT,
      3,
      this.keys.jobLock(this.jobId),
      this.keys.trial(this.trialId),
      this.keys.trialEvents(this.trialId),
      this.token,
      ref ? String(checkpointOrder(ref)) : '-1',
      ref ? JSON.stringify(ref) : '',
      String(ref?.step ?? 0),
      JSON.stringify(event),
      from.manifestKey,
    )) as number;
    return RESULT[res] ?? 'lock-lost';
  }

  /**
   * Moves the trial's latest-checkpoint pointer forward to `ref` (never backward). Checkpoints are ordered
   * by (health restarts, step): after a restart rewound training, its checkpoints supersede the later
   * steps of the abandoned run.
   */
  async commitCheckpoint(ref: CheckpointRef, sampleKey: string, resolution?: number): Promise<FenceResult> {
    const sample: SampleRef = {
      step: ref.step,
      key: sampleKey,
      t: ref.t,
      ...(resolution ? { resolution } : {}),
    };
    const res = (await this.redis.eval(
      COMMIT_CHECKPOINT,
      4,
      this.keys.jobLock(this.jobId),
      this.keys.trial(this.trialId),
      this.keys.trialCheckpoints(this.trialId),
      this.keys.trialSamples(this.trialId),
      this.token,
      String(checkpointOrder(ref)),
      JSON.stringify(ref),
      JSON.stringify(sample),
    )) as number;
    return RESULT[res] ?? 'lock-lost';
  }
}
