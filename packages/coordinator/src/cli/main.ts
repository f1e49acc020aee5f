import { Command, InvalidArgumentError } from 'commander';
import { registerK8sCommand } from '../k8s/k8s-command.ts';
import { ApiClient, ApiError } from './api-client.ts';
import { registerAugmentCommand } from './augment-command.ts';
import { cliTarget } from './cli-config.ts';
import { registerClientCommands } from './commands.ts';
import { registerDatasetCommands } from './dataset-commands.ts';
import { registerExportCommand } from './export-command.ts';
import { registerExtendCommand } from './extend-command.ts';
import { registerInferCommand } from './infer-command.ts';
import { registerSearchCommands } from './search-commands.ts';
import { runCoordinator } from './serve.ts';
import { runUp } from './up.ts';

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

function port(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new InvalidArgumentError('must be a port number (0-65535)');
  return n;
}

/** The `gantry` command line. */
export async function main(argv: string[]): Promise<void> {
  const program = new Command('gantry')
    .description('Gantry: distributed GAN training sweeps (coordinator, BullMQ workers, S3 checkpoints)')
    .option(
      '--api <url>',
      'coordinator API URL (default: $GANTRY_API_URL, else api_url of ~/.config/gantry/cli.json, else http://127.0.0.1:8080); the bearer token comes from $GANTRY_API_TOKEN or token of that file',
    )
    .showHelpAfterError();

  program
    .command('up')
    .description('run the local stack in the foreground: Redis, S3, coordinator and N workers')
    .option('-n, --workers <n>', 'worker processes to start', positiveInt, 2)
    .option('-p, --port <port>', 'API port (default: $GANTRY_PORT or 8080)', port)
    .option('--data-dir <dir>', 'where Redis, S3 objects and logs are kept', '.gantry')
    .action((opts: { workers: number; port?: number; dataDir: string }) => runUp(opts));

  program
    .command('coordinator')
    .description(
      'run the coordinator alone (API, scheduler), configured from the environment: REDIS_URL, S3_*, GANTRY_*',
    )
    .option('-p, --port <port>', 'API port (default: $GANTRY_PORT or 8080)', port)
    .option('--host <host>', 'listen address (default: $GANTRY_HOST or 127.0.0.1)')
    .action((opts: { port?: number; host?: string }) => runCoordinator(opts));

  registerK8sCommand(program);

  const api = () => new ApiClient(cliTarget(program.opts<{ api?: string }>().api));
  registerClientCommands(program, api);
  registerExtendCommand(program, api);
  registerInferCommand(program, api);
  registerExportCommand(program, api);
  registerAugmentCommand(program, api);
  registerDatasetCommands(program, api);
  registerSearchCommands(program, api);

  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof ApiError) {
      process.stderr.write(`error: ${err.message}${err.code !== 'HTTP_ERROR' ? ` [${err.code}]` : ''}\n`);
      for (const i of err.issues) process.stderr.write(`  ${i.path || '(spec)'}: ${i.message}\n`);
    } else {
      const e = err as NodeJS.ErrnoException;
      process.stderr.write(`error: ${e.code === 'ENOENT' ? `no such file: ${e.path}` : e.message}\n`);
    }
    process.exitCode = 1;
  }
}
