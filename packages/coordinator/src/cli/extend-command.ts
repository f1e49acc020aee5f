import { type Command, InvalidArgumentError } from 'commander';
import type { ApiClient } from './api-client.ts';

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

/** `gantry extend <sweepId> --trials N`: more trials for a running or finished sweep. */
export function registerExtendCommand(program: Command, api: () => ApiClient): void {
  program
    .command('extend')
    .description(
      'add trials to a running or finished sweep (random, tpe, pbt-replay); a finished sweep runs again. TPE suggests the new trials from every result so far',
    )
    .argument('<sweepId>')
    .requiredOption('-t, --trials <n>', 'how many trials to add', positiveInt)
    .action(async (sweepId: string, opts: { trials: number }) => {
      const res = await api().post<{ id: string; state: string; trials: number; added: number }>(
        `/v1/sweeps/${encodeURIComponent(sweepId)}/extend`,
        { text: JSON.stringify({ trials: opts.trials }), type: 'application/json' },
      );
      process.stdout.write(`sweep ${res.id} ${res.state}: ${res.added} trials added, ${res.trials} in all\n`);
    });
}
