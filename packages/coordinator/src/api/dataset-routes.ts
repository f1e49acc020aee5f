import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BadRequestError, DATASET_NAME_PATTERN, GantryError, PayloadTooLargeError } from '@gantry/shared';
import type { FastifyInstance } from 'fastify';
import { DatasetStore } from '../datasets/dataset-store.ts';
import { type PushOptions, pushDataset } from '../datasets/push.ts';

/** Archive bodies accepted by `POST /v1/datasets`. */
export const ARCHIVE_TYPES = [
  'application/x-tar',
  'application/gzip',
  'application/x-gzip',
  'application/zip',
];

/** Largest archive accepted through the API. */
export const MAX_ARCHIVE_BYTES = 8 * 1024 ** 3;

interface PushQuery {
  name?: string;
  paired?: string;
  size?: string;
  channels?: string;
  test_fraction?: string;
}

/** `--paired`, `--size`, `--channels`, `--test-fraction` as query parameters, checked and named. */
export function pushOptionsFromQuery(q: PushQuery): Omit<PushOptions, 'onProgress'> {
  if (!q.name) throw new BadRequestError('name', 'is required: the data set to push a version of');
  DatasetStore.checkPushName(q.name);
  const opts: Omit<PushOptions, 'onProgress'> = { name: q.name, label: `${q.name}.upload` };
  if (q.paired !== undefined && q.paired !== '') {
    if (q.paired !== 'folders' && q.paired !== 'ab')
      throw new BadRequestError('paired', 'must be folders or ab');
    opts.paired = q.paired;
  }
  if (q.size !== undefined) {
    const size = Number(q.size);
    if (!Number.isInteger(size) || size < 4 || size > 1024)
      throw new BadRequestError('size', 'must be an integer from 4 to 1024');
    opts.size = size;
  }
  if (q.channels !== undefined) {
    const c = Number(q.channels);
    if (c !== 1 && c !== 3 && c !== 4) throw new BadRequestError('channels', 'must be 1, 3 or 4');
    opts.channels = c;
  }
  if (q.test_fraction !== undefined) {
    const f = Number(q.test_fraction);
    if (!(f >= 0 && f <= 0.5)) throw new BadRequestError('test_fraction', 'must be from 0 to 0.5');
    opts.testFraction = f;
  }
  return opts;
}

/**
 * `GET /v1/datasets`, `GET /v1/datasets/:name`, and `POST /v1/datasets?name=...` with a tar, tar.gz or zip
 * body. With `Accept: application/x-ndjson` the push answers at once and streams one JSON line per
 * progress step, then `{"done": summary}` or `{"error": {...}}`; otherwise it answers 201 with the summary.
 */
export function registerDatasetRoutes(app: FastifyInstance, datasets: DatasetStore): void {
  // Archive bodies reach the handler as a stream; its size is bounded while it is spooled to disk.
  app.addContentTypeParser(ARCHIVE_TYPES, (_req, payload, done) => done(null, payload));

  app.get('/v1/datasets', async () => ({ datasets: await datasets.list() }));
  app.get<{ Params: { name: string } }>('/v1/datasets/:name', async (req) => {
    const { name } = req.params;
    if (!DATASET_NAME_PATTERN.test(name))
      throw new BadRequestError('name', `not a data set name: ${JSON.stringify(name.slice(0, 80))}`);
    return datasets.show(name);
  });

  app.post<{ Querystring: PushQuery }>('/v1/datasets', async (req, reply) => {
    const opts = pushOptionsFromQuery(req.query);
    const body = req.body as NodeJS.ReadableStream | undefined;
    if (!body || typeof (body as { pipe?: unknown }).pipe !== 'function')
      throw new BadRequestError('body', `send the images as one archive (${ARCHIVE_TYPES.join(', ')})`);
    const dir = await mkdtemp(join(tmpdir(), 'gantry-push-'));
    const file = join(dir, 'upload');
    try {
      let bytes = 0;
      const bound = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          bytes += chunk.length;
          if (bytes > MAX_ARCHIVE_BYTES) cb(new PayloadTooLargeError('data set archive', MAX_ARCHIVE_BYTES));
          else cb(null, chunk);
        },
      });
      await pipeline(body, bound, createWriteStream(file));
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
    const run = (onProgress?: PushOptions['onProgress']) =>
      pushDataset(datasets, file, { ...opts, onProgress }).finally(() =>
        rm(dir, { recursive: true, force: true }),
      );

    if (!(req.headers.accept ?? '').includes('application/x-ndjson')) {
      return reply.status(201).send(await run());
    }
    const out = new PassThrough();
    const line = (v: unknown) => out.write(`${JSON.stringify(v)}\n`);
    let last = 0;
    run((p) => {
      const now = Date.now();
      if (p.phase === 'read' && now - last < 200) return;
      last = now;
      line({ progress: p });
    }).then(
      (summary) => {
        line({ done: summary });
        out.end();
      },
      (err: unknown) => {
        const e =
          err instanceof GantryError
            ? err.toJSON()
            : { code: 'INTERNAL', message: (err as Error).message ?? 'internal error' };
        if (!(err instanceof GantryError)) app.log.error(err);
        line({ error: e });
        out.end();
      },
    );
    return reply.status(200).type('application/x-ndjson').send(out);
  });
}
