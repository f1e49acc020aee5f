import { TERMINAL_TRIAL_STATES, type TrialRecord } from '@gantry/shared';
import { isPaused } from './search/engine.ts';
import type { StoredSweep } from './sweep-store.ts';

export type Trial = TrialRecord & { dispatched: boolean };

/**
 * Where a trial stands for the scheduler. `waiting`: queued and not yet dispatched; `live`: dispatched and
 * holding one of the sweep's parallel places; `paused`: at a segment's end, waiting for a decision (no
 * place); `started`: running though its record does not say dispatched (the coordinator died between
 * queueing its job and marking it); `ended`: a terminal state.
 */
export type TrialPlace = 'waiting' | 'live' | 'paused' | 'started' | 'ended';

export function placeOf(t: Trial): TrialPlace {
  if (TERMINAL_TRIAL_STATES.has(t.state)) return 'ended';
  if (!t.dispatched) return t.state === 'queued' ? 'waiting' : 'started';
  return isPaused(t) ? 'paused' : 'live';
}

/** Dispatch order among waiting trials: the least trained first (a PBT population moves on together), then by index. */
function dispatchOrder(a: Trial, b: Trial): number {
  return a.step - b.step || a.index - b.index;
}

/**
 * The scheduling coordinator's copy of one active sweep: its trials, and how many stand in each place,
 * kept up to date from the trials that changed (the dirty set) so that a pass costs what changed, not what
 * the sweep holds. Loaded whole when the coordinator takes the lease, when the sweep's record changes
 * (extend) and at each audit.
 */
export class SweepView {
  /** In index order; the objects the search engine updates in place. */
  readonly trials: Trial[] = [];
  private readonly byId = new Map<string, Trial>();
  private readonly positions = new Map<string, number>();
  private readonly places = new Map<string, TrialPlace>();
  private readonly counts: Record<TrialPlace, number> = {
    waiting: 0,
    live: 0,
    paused: 0,
    started: 0,
    ended: 0,
  };
  /** Waiting trials' ids in dispatch order from `head` on; entries that stopped waiting are skipped lazily. */
  private order: string[] = [];
  private head = 0;
  private orderStale = false;

  constructor(
    public sweep: StoredSweep,
    trials: readonly Trial[],
  ) {
    for (const t of trials) this.add(t);
    this.rebuildOrder();
  }

  get size(): number {
    return this.trials.length;
  }

  count(place: TrialPlace): number {
    return this.counts[place];
  }

  trial(id: string): Trial | undefined {
    return this.byId.get(id);
  }

  /** A trial new to the view (a TPE suggestion), or the same trial as Redis holds it now. */
  put(t: Trial): void {
    const old = this.byId.get(t.id);
    if (!old) {
      this.add(t);
      this.orderStale = true;
      return;
    }
    this.trials[this.positions.get(t.id)!] = t;
    this.byId.set(t.id, t);
    this.place(t);
  }

  /** Re-reads the place of a trial the scheduler or the search engine changed in place. */
  place(t: Trial): void {
    const before = this.places.get(t.id);
    const now = placeOf(t);
    if (before === now) return;
    if (before) this.counts[before] -= 1;
    this.counts[now] += 1;
    this.places.set(t.id, now);
    if (now === 'waiting') this.orderStale = true;
  }

  /** Re-reads every trial's place (after the search engine's decisions, which may touch any trial). */
  replaceAll(): void {
    for (const t of this.trials) this.place(t);
    this.orderStale = true;
  }

  /** Trials in a place; costs the sweep's size (the audit, the sweep's end, search sweeps). */
  inPlace(place: TrialPlace): Trial[] {
    return this.trials.filter((t) => this.places.get(t.id) === place);
  }

  /** Up to `n` waiting trials in dispatch order, those in `first` (ASHA's promotions) before the others. */
  nextWaiting(n: number, first: ReadonlySet<string> = new Set()): Trial[] {
    if (n <= 0 || this.counts.waiting === 0) return [];
    if (this.orderStale) this.rebuildOrder();
    const out: Trial[] = [];
    for (const id of first) {
      const t = this.byId.get(id);
      if (out.length < n && t && this.places.get(id) === 'waiting') out.push(t);
    }
    // Skips ids no longer waiting; those taken now are skipped by the next call once they are dispatched.
    for (let i = this.head; i < this.order.length && out.length < n; i++) {
      const t = this.byId.get(this.order[i]!)!;
      if (this.places.get(t.id) !== 'waiting') {
        if (i === this.head) this.head += 1;
        continue;
      }
      if (!first.has(t.id)) out.push(t);
    }
    return out;
  }

  private add(t: Trial): void {
    this.positions.set(t.id, this.trials.length);
    this.trials.push(t);
    this.byId.set(t.id, t);
    this.place(t);
  }

  private rebuildOrder(): void {
    this.order = this.trials
      .filter((t) => this.places.get(t.id) === 'waiting')
      .sort(dispatchOrder)
      .map((t) => t.id);
    this.head = 0;
    this.orderStale = false;
  }
}
