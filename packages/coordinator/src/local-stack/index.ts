/**
 * Throwaway Redis and S3 servers for tests, demos and `gantry dev`.
 * @packageDocumentation
 */

export { findOnPath, pickFreePort, sleep, stopChild } from './process-util.ts';
export {
  isRedisReachable,
  type LocalRedis,
  type StartRedisServerOptions,
  startRedisServer,
} from './redis-server.ts';
export { type LocalS3, S3RVER_CREDENTIALS, type StartS3ServerOptions, startS3Server } from './s3-server.ts';
export { LocalStack, type LocalStackOptions } from './stack.ts';
export { DEFAULT_WORKER_ENTRY, spawnWorker, stopWorker, type WorkerProcess } from './worker-processes.ts';
