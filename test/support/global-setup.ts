import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { startRedisServer, startS3Server } from '../../packages/coordinator/src/local-stack/index.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
    s3Endpoint: string;
    datasetCacheDir: string;
  }
}

/**
 * Starts one real redis-server and one embedded s3rver for the whole test run; tests isolate themselves
 * with a unique key prefix / bucket (see infra.ts).
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const redis = await startRedisServer();
  const s3 = await startS3Server();
  const cacheDir = await mkdtemp(join(tmpdir(), 'gantry-test-cache-'));
  project.provide('redisUrl', redis.url);
  project.provide('s3Endpoint', s3.endpoint);
  project.provide('datasetCacheDir', cacheDir);
  return async () => {
    await rm(cacheDir, { recursive: true, force: true });
    await s3.close();
    await redis.close();
  };
}
