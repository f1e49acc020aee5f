import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger, RedisClient, RedisKeys } from '@gantry/shared';

/**
 * Takes the lease (KEYS[1]) when nobody holds it, with a new epoch (KEYS[2]), or renews it when it still
 * holds this coordinator's token (ARGV[2]). ARGV[1] the coordinator's id, ARGV[3] the lease in ms. A lease
 * held under this id by an earlier process (a restarted container keeps its GANTRY_COORDINATOR_ID) is taken
 * back at once with a new epoch. Returns the token held (`<epoch>:<id>`), or false when another
 * coordinator holds the lease.
 */
const ACQUIRE = `
local cur = redis.call('GET', KEYS[1])
if cur then
  if cur == ARGV[2] then
    redis.call('PEXPIRE', KEYS[1], ARGV[3])
    return cur
  end
  local sep = string.find(cur, ':', 1, true)
  if not sep or string.sub(cur, sep + 1) ~= ARGV[1] then return false end
end
local token = redis.call('INCR', KEYS[2]) .. ':' .. ARGV[1]
redis.call('SET', KEYS[1], token, 'PX', ARGV[3])
return token
`;

/** Gives the lease up if it is still this coordinator's (a clean stop hands over at once). */
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

export interface LeaderLeaseOptions {
  /** How long the lease lasts without a renewal: the longest a dead leader holds up scheduling. @default 10000 */
  leaseMs?: number;
  /** Names this coordinator in the lease. @default `<hostname>-<pid>-<random>` */
  id?: string;
  log: Logger;
  /** Told when this coordinator becomes the leader or stops being it. */
  onChange?: (leader: boolean) => void;
}

/**
 * The lease that lets exactly one of several coordinators schedule (README, "Scale: two coordinators").
 * The holder renews it every third of the lease; the others try every third of a lease and the moment it
 * would expire (its PTTL), so a SIGKILLed leader's successor schedules within one lease period, and a
 * cleanly stopped one's (it gives the lease up) within a third of one. Each acquisition takes a new epoch from
 * a counter; the scheduler's writes are fenced by the token (`<epoch>:<id>`) in Redis, and the holder
 * also stops acting on its own once a fifth of the lease has passed without a renewal it saw succeed, so a
 * paused process that lost the lease neither writes nor queues.
 */
export class LeaderLease {
  readonly id: string;
  private readonly leaseMs: number;
  private tokenHeld?: string;
  /** Date.now() until which this process may act as leader (the renewal's start plus 4/5 of the lease). */
  private validUntil = 0;
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private loop: Promise<void> = Promise.resolve();

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
    private readonly opts: LeaderLeaseOptions,
  ) {
    this.leaseMs = opts.leaseMs ?? 10_000;
    this.id = opts.id ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  }

  /** The fencing token while this coordinator may act as leader, else undefined. */
  get token(): string | undefined {
    return this.tokenHeld !== undefined && Date.now() < this.validUntil ? this.tokenHeld : undefined;
  }

  get held(): boolean {
    return this.token !== undefined;
  }

  /** Tries to take the lease now, then keeps renewing or retrying until stop(). */
  async start(): Promise<void> {
    this.stopped = false;
    await this.attempt();
  }

  /** One acquisition or renewal; schedules the next. Errors (Redis away) count as not holding it. */
  private attempt(): Promise<void> {
    this.loop = this.loop.then(async () => {
      if (this.stopped) return;
      const began = Date.now();
      let next = this.leaseMs / 3;
      try {
        const got = (await this.redis.eval(
          ACQUIRE,
          2,
          this.keys.leader,
          this.keys.leaderEpoch,
          this.id,
          this.tokenHeld ?? '',
          String(this.leaseMs),
        )) as string | null;
        if (got) {
          this.validUntil = began + (this.leaseMs * 4) / 5;
          this.set(got);
        } else {
          this.set(undefined);
          // Again the moment the holder's lease would expire, and every third of a lease (a clean stop).
          const ttl = await this.redis.pttl(this.keys.leader);
          next = ttl > 0 ? Math.min(ttl + 5, this.leaseMs / 3) : 50;
        }
      } catch (err) {
        this.opts.log.warn({ err }, 'leader lease: Redis unreachable');
        if (this.tokenHeld !== undefined && Date.now() >= this.validUntil) this.set(undefined);
        next = Math.min(1000, this.leaseMs / 3);
      }
      if (!this.stopped) {
        this.timer = setTimeout(() => void this.attempt(), next);
        this.timer.unref();
      }
    });
    return this.loop;
  }

  private set(token: string | undefined): void {
    const was = this.tokenHeld !== undefined;
    this.tokenHeld = token;
    if (token === undefined) this.validUntil = 0;
    if (was !== (token !== undefined)) {
      this.opts.log.info(
        { coordinator: this.id, token },
        token ? 'leader: this coordinator schedules' : 'leader: lease lost',
      );
      this.opts.onChange?.(token !== undefined);
    }
  }

  /** Takes the lease for lost at once (a fenced write was refused). */
  lost(): void {
    this.set(undefined);
  }

  /** Stops renewing and gives the lease up if held. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.loop;
    const token = this.tokenHeld;
    this.set(undefined);
    if (token) await this.redis.eval(RELEASE, 1, this.keys.leader, token).catch(() => {});
  }
}
