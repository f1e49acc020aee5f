/** `gantry-worker`: a worker node process, configured from the environment (see README). */
import { createLogger, loadConfig } from '@gantry/shared';
import { GantryWorker } from './worker.ts';

const config = loadConfig(process.env);
const log = createLogger('gantry-worker', config.logLevel);
const worker = new GantryWorker(config, log);

let signals = 0;
const shutdown = (sig: string) => {
  signals += 1;
  if (signals > 1) process.exit(130); // second Ctrl-C: leave now
  log.info({ signal: sig }, 'received signal');
  worker.close().then(
    () => process.exit(0),
    (err: unknown) => {
      log.error({ err }, 'shutdown failed');
      process.exit(1);
    },
  );
};
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

worker.start().catch((err: unknown) => {
  log.fatal({ err }, 'worker failed to start');
  process.exit(1);
});
