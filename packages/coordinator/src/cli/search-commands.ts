import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import type { ImportanceAnswer } from '../api/search-routes.ts';
import type { ApiClient } from './api-client.ts';

const say = (line = '') => process.stdout.write(`${line}\n`);

const BAR = 20;

/** `gantry importance`'s table: one row per searched parameter, its share as a bar, its eta^2, bins and chance level. */
export function importanceTable(a: ImportanceAnswer): string[] {
  const width = Math.max(9, ...a.params.map((p) => p.name.length));
  const lines = [
    `parameter importance of ${a.sweepId} by ${a.metric.name} over ${a.trials} completed trials (${a.method}):`,
    `  ${'parameter'.padEnd(width)}  share  ${''.padEnd(BAR)}  eta2   bins  chance`,
  ];
  for (const p of a.params) {
    const filled = Math.round(p.importance * BAR);
    lines.push(
      `  ${p.name.padEnd(width)}  ${p.importance.toFixed(3)}  ${'#'.repeat(filled)}${'.'.repeat(BAR - filled)}  ${p.eta2.toFixed(3)}  ${String(p.bins).padEnd(4)}  ${p.chance.toFixed(3)}`,
    );
  }
  return lines;
}

/** `gantry importance <sweepId>` and `gantry plot <sweepId> -o <file.png>`. */
export function registerSearchCommands(program: Command, api: () => ApiClient): void {
  program
    .command('importance')
    .description("which searched parameters a finished sweep's metric depends on, as shares that add up to 1")
    .argument('<sweepId>')
    .addHelpText(
      'after',
      `
Over the sweep's completed trials (at least 4), each parameter on its own: the trials are put in bins by the
parameter's value (each value its own bin for a short list, else up to 10 bins of equal counts), and eta2 is
the share of the variance of the trials' metric ranks that the bins' means explain (a one-way ANOVA). share is
eta2 over the sum of all eta2s. A parameter without any effect gets about 'chance' (bins - 1) / (trials - 1)
of eta2 by luck; interactions between parameters are not separated (fANOVA would).`,
    )
    .action(async (sweepId: string) => {
      for (const line of importanceTable(await api().importance(sweepId))) say(line);
    });

  program
    .command('plot')
    .description(
      "write a sweep's parallel-coordinates plot as PNG: an axis per searched parameter and the metric's",
    )
    .argument('<sweepId>')
    .requiredOption('-o, --output <file>', 'where to write the PNG')
    .addHelpText(
      'after',
      `
One line per trial with a value (a completed trial's result; a stopped trial's last evaluation, drawn dimmer),
coloured from the best value (blue) to the worst (red); the metric's axis is last, the best value on top.
log_uniform parameters are on a log scale.`,
    )
    .action(async (sweepId: string, opts: { output: string }) => {
      const png = await api().parallelPlot(sweepId);
      await writeFile(opts.output, png);
      say(`wrote ${opts.output} (${png.length} bytes)`);
    });
}
