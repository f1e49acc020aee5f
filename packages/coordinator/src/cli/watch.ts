import type { ApiClient, SweepDetail } from './api-client.ts';
import { isTerminalSweep, LiveBlock, sweepHeader, trialLine } from './render.ts';

/** Polls a sweep and redraws its trials' progress until it ends; returns the final detail. */
export async function watchSweep(
  api: ApiClient,
  sweepId: string,
  out: NodeJS.WriteStream,
  opts: { intervalMs?: number; signal?: AbortSignal } = {},
): Promise<SweepDetail> {
  const block = new LiveBlock(out);
  for (;;) {
    const s = await api.get<SweepDetail>(`/v1/sweeps/${encodeURIComponent(sweepId)}`);
    const key = `${s.state}|${s.trials.map((t) => t.state).join(',')}`;
    block.render([sweepHeader(s), ...s.trials.map(trialLine)], key);
    if (isTerminalSweep(s.state) || opts.signal?.aborted) return s;
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 1000));
  }
}
