import { randomBytes } from 'node:crypto';
import { type GantryConfig, loadConfig, ObjectStore, type ObjectStoreConfig } from '@gantry/shared';
import { inject } from 'vitest';
import { S3RVER_CREDENTIALS } from '../../packages/coordinator/src/local-stack/index.ts';

/** A short random id for isolating one test's queue prefix and bucket. */
export function uniqueId(tag = 't'): string {
  return `${tag}-${randomBytes(4).toString('hex')}`;
}

/** Object-store settings of the run's s3rver for a fresh bucket. */
export function s3Config(bucket = uniqueId('b')): ObjectStoreConfig {
  return {
    endpoint: inject('s3Endpoint'),
    region: 'us-east-1',
    bucket,
    forcePathStyle: true,
    ...S3RVER_CREDENTIALS,
  };
}

/** Environment for Gantry processes pointed at the run's Redis and S3, with a unique prefix and bucket. */
export function testEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const s3 = s3Config();
  return {
    ...process.env,
    REDIS_URL: inject('redisUrl'),
    S3_ENDPOINT: s3.endpoint,
    S3_BUCKET: s3.bucket,
    AWS_ACCESS_KEY_ID: s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
    GANTRY_PREFIX: uniqueId('g'),
    LOG_LEVEL: 'warn',
    GANTRY_WORKER_CONCURRENCY: '1',
    // One node-wide data set cache for the run, as on a real node (versions are content-addressed).
    GANTRY_CACHE_DIR: inject('datasetCacheDir'),
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    ...extra,
  };
}

export function testConfig(extra: NodeJS.ProcessEnv = {}): GantryConfig {
  return loadConfig(testEnv(extra));
}

/** A bucket created for this test. */
export async function freshStore(): Promise<ObjectStore> {
  const store = new ObjectStore(s3Config());
  await store.ensureBucket();
  return store;
}
