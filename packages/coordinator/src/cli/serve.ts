import { createLogger, loadConfig, refuseOpenDoor } from '@gantry/shared';
import { Coordinator } from '../coordinator.ts';

/**
 * `gantry coordinator`: the coordinator alone, in the foreground, configured from the environment (README,
 * "Configuration"), as a deployment runs it beside its own Redis and object store. Logs JSON on stderr;
 * SIGTERM or Ctrl-C stops it (running trials go on on their workers).
 */
export async function runCoordinator(opts: { port?: number; host?: string }): Promise<void> {
  const env = { ...process.env };
  if (opts.port !== undefined) env.GANTRY_PORT = String(opts.port);
  if (opts.host !== undefined) env.GANTRY_HOST = opts.host;
  const config = loadConfig(env);
  // Before any connection is made: an API open to the network without tokens does not start.
  refuseOpenDoor(config.api.host, config.api.tokens.length);
  const log = createLogger('gantry-coordinator', config.logLevel);
  const coordinator = new Coordinator(config, log);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) process.exit(130);
    stopping = true;
    log.info({ signal }, 'stopping');
    coordinator.close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  let url: string | undefined;
  try {
    url = await coordinator.start({ host: config.api.host, port: config.api.port });
  } catch (err) {
    await coordinator.close();
    throw err;
  }
  process.stdout.write(`gantry coordinator listening on ${url}\n`);
}
