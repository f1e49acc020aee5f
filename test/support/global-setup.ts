import type { TestProject } from 'vitest/node';
import { startRedisServer, startS3Server } from '../../packages/coordinator/src/local-stack/index.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
    s3Endpoint: string;
  }
}

/**
 * Starts one real redis-server and one embedded s3rver for the whole test run; tests isolate themselves
 * with a unique key prefix / bucket (see infra.ts).
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const redis = await startRedisServer();
  const s3 = await startS3Server();
  project.provide('redisUrl', redis.url);
  project.provide('s3Endpoint', s3.endpoint);
  return async () => {
    await s3.close();
    await redis.close();
  };
}
