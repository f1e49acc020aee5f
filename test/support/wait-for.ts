const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` every 100 ms until it returns a value; throws naming `what` after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined>,
  timeoutMs: number,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

/** What {@link waitForSweepEnd} and {@link waitForWorkers} need of a coordinator. */
interface CoordinatorView {
  store: { get(id: string): Promise<{ state: string } | undefined> };
  workers(): Promise<unknown[]>;
}

/** Waits until sweep `id` has ended (completed, failed or cancelled) and returns it. */
export function waitForSweepEnd<S extends { state: string }>(
  coordinator: { store: { get(id: string): Promise<S | undefined> } },
  id: string,
  timeoutMs: number,
): Promise<S> {
  return waitFor(
    `sweep ${id} to end`,
    async () => {
      const s = await coordinator.store.get(id);
      return s && ['completed', 'failed', 'cancelled'].includes(s.state) ? s : undefined;
    },
    timeoutMs,
  );
}

/** Waits until `n` workers heartbeat to the coordinator. */
export async function waitForWorkers(
  coordinator: CoordinatorView,
  n: number,
  timeoutMs = 60_000,
): Promise<void> {
  await waitFor(
    `${n} workers`,
    async () => ((await coordinator.workers()).length >= n ? true : undefined),
    timeoutMs,
  );
}
