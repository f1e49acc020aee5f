/**
 * Marks of the trainer's start-up (performance.mark under `gantry:`), from its entry script on: what the
 * ready message carries to the parent as StartupTimes (bench/startup.ts decomposes start-up from them).
 */
import type { StartupTimes } from './ipc.ts';

const PREFIX = 'gantry:';

/** Marks the end of start-up phase `phase` now, with the CPU time the process has used so far. */
export function markStartup(phase: string): void {
  performance.mark(PREFIX + phase, { detail: { cpu: cpuMs() } });
}

/** User and system CPU time of this process so far, ms (the entry script marks its own the same way). */
function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

/** Every start-up mark so far (ms since the process began) and which entry loaded the sources. */
export function startupTimes(): StartupTimes {
  const marks: Record<string, number> = {};
  const cpu: Record<string, number> = {};
  let entry: StartupTimes['entry'] = 'tsx';
  for (const m of performance.getEntriesByType('mark')) {
    if (!m.name.startsWith(PREFIX)) continue;
    const phase = m.name.slice(PREFIX.length);
    marks[phase] = m.startTime;
    const detail = (m as { detail?: unknown }).detail as { entry?: unknown; cpu?: unknown } | null;
    if (typeof detail?.cpu === 'number') cpu[phase] = detail.cpu;
    if (detail?.entry === 'compiled') entry = 'compiled';
  }
  return { timeOrigin: performance.timeOrigin, entry, marks, cpu };
}
