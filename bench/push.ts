/**
 * The bench's push block: how fast the emoji set is built (decode, composite, split, pack) and how fast a
 * folder of its PNGs is pushed through `pushDataset` into an in-process s3rver, repeats alternating.
 */
import { readFileSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BUILTIN_DATASETS } from '../packages/coordinator/src/datasets/builtin/builtin-sets.ts';
import { DatasetStore } from '../packages/coordinator/src/datasets/dataset-store.ts';
import { packDataset } from '../packages/coordinator/src/datasets/pack.ts';
import { pushDataset } from '../packages/coordinator/src/datasets/push.ts';
import { S3RVER_CREDENTIALS, startS3Server } from '../packages/coordinator/src/local-stack/index.ts';
import { createLogger, ObjectStore } from '../packages/shared/src/index.ts';
import { list, median } from './stats.ts';

const here = dirname(fileURLToPath(import.meta.url));

/** Builds the emoji set as the coordinator does on first use: decode, composite, split, then pack. */
async function packEmoji(): Promise<{
  images: number;
  loadSeconds: number;
  packSeconds: number;
  bytes: number;
}> {
  const t0 = performance.now();
  const { examples, meta } = await BUILTIN_DATASETS.get('emoji')!.load({});
  const t1 = performance.now();
  const { manifest } = packDataset(examples, { name: 'emoji', ...meta });
  const t2 = performance.now();
  const bytes = manifest.shards.reduce((n, s) => n + s.bytes, 0);
  return { images: examples.length, loadSeconds: (t1 - t0) / 1000, packSeconds: (t2 - t1) / 1000, bytes };
}

/** The Google emoji PNGs as a folder to push: one folder per category, as `gantry dataset push` reads them. */
async function emojiFolder(): Promise<{ dir: string; files: number }> {
  const require = createRequire(join(here, '..', 'packages', 'coordinator', 'package.json'));
  const pkg = dirname(require.resolve('emoji-datasource-google/package.json'));
  const index = JSON.parse(readFileSync(join(pkg, 'emoji.json'), 'utf8')) as {
    image: string;
    category: string;
    skin_variations?: Record<string, { image: string }>;
  }[];
  const dir = await mkdtemp(join(tmpdir(), 'gantry-bench-push-'));
  let files = 0;
  for (const e of index) {
    const folder = join(dir, e.category.toLowerCase().replace(/[^a-z0-9]+/g, '-'));
    await mkdir(folder, { recursive: true });
    for (const image of [e.image, ...Object.values(e.skin_variations ?? {}).map((v) => v.image)]) {
      await copyFile(join(pkg, 'img', 'google', '64', image), join(folder, image));
      files += 1;
    }
  }
  return { dir, files };
}

/** Pack and push throughput of the emoji set, repeats alternating between the two. */
export async function benchPush(REPEATS: number, say: (line: string) => void) {
  const folder = await emojiFolder();
  const bucket = 'gantry-bench';
  const s3 = await startS3Server({ buckets: [bucket] });
  const objects = new ObjectStore({
    endpoint: s3.endpoint,
    region: 'us-east-1',
    bucket,
    forcePathStyle: true,
    ...S3RVER_CREDENTIALS,
  });
  const store = new DatasetStore(objects, createLogger('bench', 'silent'));
  say(`push: emoji, ${folder.files} PNGs of 64x64 in ${folder.dir}; ${REPEATS} repeats of pack and push`);
  const packs: Awaited<ReturnType<typeof packEmoji>>[] = [];
  const pushes: { images: number; seconds: number; bytes: number; shards: number }[] = [];
  try {
    for (let r = 0; r < REPEATS; r++) {
      packs.push(await packEmoji());
      // A new name each time: a second push of the same content under one name writes nothing.
      const summary = await pushDataset(store, folder.dir, { name: `emoji-push-${r}`, label: 'emoji' });
      if (!summary.created) throw new Error('bench push wrote nothing');
      pushes.push({
        images: summary.manifest.counts.train + summary.manifest.counts.test,
        seconds: summary.seconds,
        bytes: summary.bytes,
        shards: summary.manifest.shards.length,
      });
    }
  } finally {
    await objects.close();
    await s3.close();
    await rm(folder.dir, { recursive: true, force: true });
  }
  const packImg = packs.map((p) => p.images / (p.loadSeconds + p.packSeconds));
  const loadImg = packs.map((p) => p.images / p.loadSeconds);
  const packOnlyImg = packs.map((p) => p.images / p.packSeconds);
  const pushImg = pushes.map((p) => p.images / p.seconds);
  const mb = (b: number) => (b / 1e6).toFixed(1);
  say(
    `push: built-in emoji, load + pack: ${median(packImg).toFixed(0)} img/s ${list(packImg, 0)} (decode, composite, split ${median(loadImg).toFixed(0)} img/s; pack ${median(packOnlyImg).toFixed(0)} img/s; ${mb(packs[0]!.bytes)} MB of shards)`,
  );
  say(
    `push: folder of PNGs to s3rver (pushDataset: read, decode, pack, upload): ${median(pushImg).toFixed(0)} img/s ${list(pushImg, 0)} (${pushes[0]!.images} images, ${pushes[0]!.shards} shards, ${mb(pushes[0]!.bytes)} MB)`,
  );
  return {
    images: packs[0]!.images,
    pack_img_s: median(packImg),
    load_img_s: median(loadImg),
    pack_only_img_s: median(packOnlyImg),
    push_img_s: median(pushImg),
    shard_bytes: pushes[0]!.bytes,
    repeats: { pack_img_s: packImg, push_img_s: pushImg },
  };
}
