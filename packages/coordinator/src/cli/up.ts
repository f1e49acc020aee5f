import { LocalStack } from '../local-stack/stack.ts';
import type { SweepDetail } from './api-client.ts';
import { ApiClient } from './api-client.ts';
import { LiveBlock, sweepHeader, trialLine } from './render.ts';

const say = (line = '') => process.stdout.write(`${line}\n`);

/** `gantry up`: runs the local stack in the foreground with a live view of active sweeps until Ctrl-C. */
export async function runUp(opts: { workers: number; port?: number; dataDir: string }): Promise<void> {
  const env = { ...process.env };
  if (opts.port !== undefined) env.GANTRY_PORT = String(opts.port);
  let stopping = false;
  const stack = new LocalStack({
    workers: opts.workers,
    dataDir: opts.dataDir,
    env,
    onWorkerExit: (e) => {
      if (stopping) return;
      const how = e.signal ?? `code ${e.code}`;
      say(
        `worker ${e.id} exited (${how}); restarting it in ${(e.restartInMs / 1000).toFixed(0)} s (restart ${e.restarts}; log ${e.logFile})`,
      );
    },
  });
  const stop = async () => {
    if (stopping) process.exit(130);
    stopping = true;
    say(
      '\nstopping: workers checkpoint their trials and give them back to the queue (Ctrl-C again to force)',
    );
    await stack.close();
    say('stopped');
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());

  await stack.start();
  for (const n of stack.notes) say(n);
  say(`api: ${stack.apiUrl}   (export GANTRY_API_URL=${stack.apiUrl} for other shells)`);
  say(`workers: ${stack.workers.map((w) => w.id).join(', ')} (logs in ${opts.dataDir}/logs/)`);
  say('submit with: npx gantry submit examples/dcgan-fashion.yaml --watch; Ctrl-C stops');

  const token = process.env.GANTRY_API_TOKEN;
  const api = new ApiClient({ url: stack.apiUrl, token, tokenSource: 'GANTRY_API_TOKEN' });
  const block = new LiveBlock(process.stdout);
  while (!stopping) {
    try {
      const { sweeps } = await api.get<{ sweeps: SweepDetail[] }>('/v1/sweeps');
      const active = sweeps.filter((s) => s.state === 'queued' || s.state === 'running');
      const lines: string[] = [];
      for (const s of active) {
        const d = await api.get<SweepDetail>(`/v1/sweeps/${encodeURIComponent(s.id)}`);
        lines.push(
          sweepHeader(d),
          ...d.trials.filter((t) => t.state !== 'queued' || t.step > 0).map(trialLine),
        );
      }
      const { workers } = await api.get<{ workers: { id: string; busyTrials: string[] }[] }>('/v1/workers');
      lines.push(
        `${workers.length} live workers, ${workers.reduce((n, w) => n + w.busyTrials.length, 0)} busy`,
      );
      block.render(lines, lines.filter((l) => !l.includes('[')).join('|'));
    } catch {
      // transient while starting or stopping
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}
