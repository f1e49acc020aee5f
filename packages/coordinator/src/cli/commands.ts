import { readFile, writeFile } from 'node:fs/promises';
import type { StageEvent } from '@gantry/shared';
import type { Command } from 'commander';
import type { SearchView } from '../search/views.ts';
import type { ApiClient, SweepDetail } from './api-client.ts';
import {
  datasetLabel,
  formatParams,
  leaderboard,
  searchSection,
  stageTable,
  sweepHeader,
  trialLine,
} from './render.ts';
import { watchSweep } from './watch.ts';

const say = (line = '') => process.stdout.write(`${line}\n`);

/** Prints where a finished sweep's results are and how to fetch them; staged trials get a stage table. */
export async function printResults(s: SweepDetail, client: ApiClient): Promise<void> {
  for (const line of leaderboard(s)) say(line);
  for (const t of s.trials.filter((row) => row.stage)) {
    const detail = await client.get<{ stageEvents?: StageEvent[] }>(`/v1/trials/${encodeURIComponent(t.id)}`);
    say(`stages of ${t.id}:`);
    for (const line of stageTable(detail.stageEvents ?? [])) say(line);
  }
  if (s.best) {
    say(
      `best: ${s.best.trialId} ${s.best.metric}=${s.best.value.toFixed(4)} (${formatParams(s.best.params)})`,
    );
    say(`use it: gantry infer ${s.best.trialId} -o out.png   (see gantry infer --help)`);
  }
  say('sample grids:');
  for (const t of s.trials) {
    if (t.step > 0)
      say(
        `  ${t.id}: gantry samples ${t.id} -o ${t.id}.png   (store: sweeps/${s.id}/trials/${t.id}/samples/)`,
      );
  }
}

export function registerClientCommands(program: Command, api: () => ApiClient): void {
  program
    .command('submit')
    .description('submit a sweep spec (YAML or JSON)')
    .argument('<spec>', 'path of the spec file')
    .option('-w, --watch', 'show live progress until the sweep ends, then a leaderboard')
    .action(async (file: string, opts: { watch?: boolean }) => {
      const text = await readFile(file, 'utf8');
      const type = file.endsWith('.json') ? 'application/json' : 'application/yaml';
      const created = await api().post<SweepDetail & { trialIds: string[]; warnings?: string[] }>(
        '/v1/sweeps',
        {
          text,
          type,
        },
      );
      say(`submitted sweep ${created.id} with ${created.trialIds.length} trials`);
      for (const w of created.warnings ?? []) say(`warning: ${w}`);
      if (!opts.watch) return;
      const final = await watchSweep(api(), created.id, process.stdout);
      await printResults(final, api());
      if (final.state !== 'completed') process.exitCode = 1;
    });

  program
    .command('status')
    .description('list sweeps, or show one sweep and its trials')
    .argument('[sweepId]')
    .action(async (sweepId?: string) => {
      if (!sweepId) {
        const { sweeps } = await api().get<{ sweeps: Omit<SweepDetail, 'trials'>[] }>('/v1/sweeps');
        if (sweeps.length === 0) say('no sweeps yet: gantry submit <spec.yaml>');
        for (const s of sweeps) {
          const best = s.best ? `  best ${s.best.metric}=${s.best.value.toFixed(4)} (${s.best.trialId})` : '';
          say(
            `${s.id.padEnd(32)} ${s.state.padEnd(10)} ${s.model}/${datasetLabel(s.dataset)}  ${JSON.stringify(s.trialCounts)}${best}`,
          );
        }
        return;
      }
      const s = await api().get<SweepDetail & { search?: SearchView | null }>(
        `/v1/sweeps/${encodeURIComponent(sweepId)}`,
      );
      say(sweepHeader(s));
      for (const t of s.trials) say(trialLine(t));
      for (const line of searchSection(s.search)) say(line);
      if (s.best) say(`best: ${s.best.trialId} ${s.best.metric}=${s.best.value.toFixed(4)}`);
    });

  program
    .command('cancel')
    .description('cancel a sweep: queued trials are dropped, running ones stop')
    .argument('<sweepId>')
    .action(async (sweepId: string) => {
      const res = await api().post<{ id: string; state: string }>(
        `/v1/sweeps/${encodeURIComponent(sweepId)}/cancel`,
      );
      say(`sweep ${res.id} ${res.state}`);
    });

  program
    .command('samples')
    .description("save a trial's latest sample grid (or the one of --step) as PNG")
    .argument('<trialId>')
    .requiredOption('-o, --output <file>', 'where to write the PNG')
    .option('-s, --step <step>', 'the grid written with the checkpoint of this step')
    .action(async (trialId: string, opts: { output: string; step?: string }) => {
      const which = opts.step === undefined ? 'latest' : encodeURIComponent(opts.step);
      const png = await api().get<Buffer>(`/v1/trials/${encodeURIComponent(trialId)}/samples/${which}.png`);
      await writeFile(opts.output, png);
      say(`wrote ${opts.output} (${png.length} bytes)`);
    });

  program
    .command('workers')
    .description('list live workers')
    .action(async () => {
      const { workers } = await api().get<{
        workers: {
          id: string;
          host: string;
          backend: string;
          device: string;
          busyTrials: string[];
          metricsUrl: string;
          lastHeartbeat: number;
          fault?: string;
        }[];
      }>('/v1/workers');
      if (workers.length === 0) say('no live workers');
      for (const w of workers) {
        const age = ((Date.now() - w.lastHeartbeat) / 1000).toFixed(0);
        say(
          `${w.id.padEnd(24)} ${w.host.padEnd(16)} ${w.backend}/${w.device}  busy: ${w.busyTrials.join(',') || '-'}  ${w.metricsUrl}  (seen ${age}s ago)`,
        );
        if (w.fault) say(`  taking no jobs for now: ${w.fault}`);
      }
    });
}
