import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalS3, startS3Server } from '../../coordinator/src/local-stack/s3-server.ts';
import {
  isTransientStoreError,
  ObjectNotFoundError,
  ObjectStore,
  type ObjectStoreConfig,
  toS3ClientConfig,
} from './object-store.ts';

let s3: LocalS3;
let cfg: ObjectStoreConfig;
let store: ObjectStore;

beforeAll(async () => {
  s3 = await startS3Server({ buckets: ['gantry-test'] });
  cfg = {
    endpoint: s3.endpoint,
    region: 'us-east-1',
    bucket: 'gantry-test',
    accessKeyId: 'S3RVER',
    secretAccessKey: 'S3RVER',
    forcePathStyle: true,
  };
  store = new ObjectStore(cfg);
});

afterAll(async () => {
  await store?.close();
  await s3?.close();
});

describe('ObjectStore against s3rver', () => {
  it('round-trips strings, bytes and JSON', async () => {
    const bytes = new Uint8Array([0, 1, 2, 254, 255]);
    await store.put('runs/r1/ckpt/step-1.bin', bytes, 'application/octet-stream');
    await store.put('runs/r1/meta.json', JSON.stringify({ step: 1, loss: [0.5, 0.25] }), 'application/json');
    await store.put('runs/r1/empty', new Uint8Array(0));

    expect(new Uint8Array(await store.get('runs/r1/ckpt/step-1.bin'))).toEqual(bytes);
    expect(await store.getJson<{ step: number; loss: number[] }>('runs/r1/meta.json')).toEqual({
      step: 1,
      loss: [0.5, 0.25],
    });
    expect((await store.get('runs/r1/empty')).length).toBe(0);
  });

  it('reports existence and throws ObjectNotFoundError for missing keys', async () => {
    await store.put('exists/yes', 'y');
    expect(await store.exists('exists/yes')).toBe(true);
    expect(await store.exists('exists/no')).toBe(false);

    const err = await store.get('exists/no').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ObjectNotFoundError);
    expect(err).toMatchObject({ code: 'OBJECT_NOT_FOUND', key: 'exists/no' });
    await expect(store.getJson('exists/no')).rejects.toBeInstanceOf(ObjectNotFoundError);
  });

  it('lists across pages and deletes many', async () => {
    const keys = Array.from({ length: 20 }, (_, i) => `samples/run 1/${String(i).padStart(3, '0')}+ü.png`);
    await Promise.all(keys.map((k) => store.put(k, 'png', 'image/png')));
    await store.put('samples-other/x.png', 'png');

    expect(await store.list('samples/')).toEqual(keys);
    expect(await store.list('samples/', 3)).toEqual(keys);
    expect(await store.list('nothing-here/')).toEqual([]);

    await store.deleteMany([...keys.slice(0, 15), 'samples/never-existed']);
    expect(await store.list('samples/')).toEqual(keys.slice(15));
    await store.deleteMany([]);
  });

  it('ensureBucket creates a missing bucket and tolerates an existing one', async () => {
    const fresh = new ObjectStore({ ...cfg, bucket: 'gantry-fresh' });
    try {
      await fresh.ensureBucket();
      await fresh.ensureBucket();
      await fresh.put('k', 'v');
      expect((await fresh.get('k')).toString()).toBe('v');
    } finally {
      await fresh.close();
    }
    await store.ensureBucket();
  });

  it('close() is idempotent and later calls reject', async () => {
    const other = new ObjectStore(cfg);
    const first = other.close();
    expect(other.close()).toBe(first);
    await first;
    await expect(other.get('x')).rejects.toThrow(/closed/);
  });
});

describe('raw clients built from toS3ClientConfig', () => {
  it('stream PutObject without storing aws-chunked framing', async () => {
    const client = new S3Client(toS3ClientConfig(cfg));
    try {
      const body = Buffer.alloc(70_000, 9);
      await client.send(
        new PutObjectCommand({
          Bucket: cfg.bucket,
          Key: 'stream/put',
          Body: Readable.from([body]),
          ContentLength: body.length,
        }),
      );
      expect((await store.get('stream/put')).equals(body)).toBe(true);
    } finally {
      client.destroy();
    }
  });

  it('multipart Upload from @aws-sdk/lib-storage', async () => {
    const client = new S3Client(toS3ClientConfig(cfg));
    try {
      const body = Buffer.alloc(11 * 1024 * 1024);
      for (let i = 0; i < body.length; i += 4096) body[i] = (i / 4096) % 251;
      const upload = new Upload({
        client,
        params: { Bucket: cfg.bucket, Key: 'multipart/ckpt.bin', Body: body },
        partSize: 5 * 1024 * 1024,
        queueSize: 2,
      });
      await upload.done();
      expect((await store.get('multipart/ckpt.bin')).equals(body)).toBe(true);
    } finally {
      client.destroy();
    }
  });
});

describe('retries through an outage', () => {
  it('a put sent while the store is down completes once it is back; answers are not retried', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'gantry-s3-outage-'));
    let server = await startS3Server({ dir, buckets: ['outage'] });
    const port = server.port;
    const retries: { op: string; attempt: number; error: string }[] = [];
    const patient = new ObjectStore(
      { ...cfg, endpoint: server.endpoint, bucket: 'outage' },
      {
        retry: { maxElapsedMs: 60_000, initialDelayMs: 50, maxDelayMs: 400 },
        onRetry: (r) => retries.push(r),
      },
    );
    try {
      await patient.put('before', 'b');
      await server.close();
      const put = patient.put('during', 'payload');
      // The put has failed at least twice before the store comes back.
      while (retries.length < 2) await new Promise((r) => setTimeout(r, 20));
      server = await startS3Server({ dir, port, buckets: ['outage'] });
      await put;
      expect((await patient.get('during')).toString()).toBe('payload');
      expect(retries[0]).toMatchObject({ op: 'put', attempt: 1 });
      expect(retries[0]!.error).toMatch(/ECONNREFUSED/);
      // A missing key is an answer: thrown at once.
      const n = retries.length;
      await expect(patient.get('never')).rejects.toBeInstanceOf(ObjectNotFoundError);
      expect(retries.length).toBe(n);
    } finally {
      await patient.close();
      await server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('gives up once the policy has run out, with the last error', async () => {
    const hopeless = new ObjectStore(
      { ...cfg, endpoint: 'http://127.0.0.1:9' },
      { retry: { maxElapsedMs: 300, initialDelayMs: 50 } },
    );
    const started = Date.now();
    const err = await hopeless.get('x').catch((e: unknown) => e);
    await hopeless.close();
    expect(isTransientStoreError(err)).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
  });

  it('tells outages from answers', () => {
    expect(isTransientStoreError(Object.assign(new Error('x'), { code: 'ECONNREFUSED' }))).toBe(true);
    expect(isTransientStoreError({ name: 'InternalError', $metadata: { httpStatusCode: 500 } })).toBe(true);
    expect(isTransientStoreError({ name: 'SlowDown', $metadata: { httpStatusCode: 503 } })).toBe(true);
    expect(isTransientStoreError({ name: 'AccessDenied', $metadata: { httpStatusCode: 403 } })).toBe(false);
    expect(isTransientStoreError({ name: 'NoSuchKey', $metadata: { httpStatusCode: 404 } })).toBe(false);
    expect(isTransientStoreError(new ObjectNotFoundError('k'))).toBe(false);
    expect(isTransientStoreError(new SyntaxError('Unexpected token'))).toBe(false);
  });
});
