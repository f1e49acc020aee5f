import { destination, type Logger, pino } from 'pino';

export type { Logger } from 'pino';

/** Structured JSON logger on stderr (stdout stays free for CLI output and IPC-free children). */
export function createLogger(name: string, level: string = 'info'): Logger {
  return pino({ name, level, base: { pid: process.pid } }, destination(2));
}
