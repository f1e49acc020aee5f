#!/usr/bin/env node
// Installs what Gantry needs on a fresh machine, and nothing twice:
//   - Debian packages: redis-server (queue), dataset-fashion-mnist (training data), prometheus (prometheus and
//     promtool, for the tests of infra/prometheus and the dashboards)
//   - with --bench only (`npm run bench`): python3-torch, the PyTorch reference of bench/dcgan_pytorch.py
//   - pnpm (pinned, through npx) and the workspace's npm packages (frozen lockfile)
//   - the trainer's compiled entry (a bundle of its sources under node_modules/.cache, rebuilt when stale)
// Run by `npm test` and `npm run demo` (without --bench); safe to run again (it checks before installing).
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values: flags } = parseArgs({ options: { bench: { type: 'boolean', default: false } } });
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const PNPM = 'pnpm@10.34.9';
const log = (msg) => process.stderr.write(`[setup] ${msg}\n`);

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: root, ...opts });
  if (r.status !== 0) {
    log(`failed: ${cmd} ${args.join(' ')} (exit ${r.status ?? r.signal})`);
    process.exit(r.status ?? 1);
  }
}

const onPath = (bin) => spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status === 0;

// 1. Debian packages.
const debian = [
  { pkg: 'redis-server', present: () => onPath('redis-server') },
  {
    pkg: 'dataset-fashion-mnist',
    present: () => existsSync('/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz'),
  },
  { pkg: 'prometheus', present: () => existsSync('/usr/bin/promtool') },
];
const missing = debian.filter((d) => !d.present()).map((d) => d.pkg);
if (missing.length > 0) {
  if (!onPath('apt-get')) {
    log(`missing ${missing.join(', ')} and no apt-get here: install them with your package manager`);
    process.exit(1);
  }
  const [apt, ...aptArgs] = process.getuid?.() === 0 ? ['apt-get'] : ['sudo', 'apt-get'];
  log(`installing Debian packages: ${missing.join(', ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  run(apt, [...aptArgs, 'update', '-q'], { env });
  run(apt, [...aptArgs, 'install', '-y', '-q', '--no-install-recommends', ...missing], { env });
}
if (flags.bench) {
  // The bench runs its reference with the system interpreter, so the package must be the Debian one. Without
  // it the bench still runs Gantry's side, and each row says why its PyTorch column is missing.
  const torch = () => spawnSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
  if (!torch()) {
    const [apt, ...aptArgs] = process.getuid?.() === 0 ? ['apt-get'] : ['sudo', 'apt-get'];
    log("installing Debian package python3-torch (the bench's PyTorch reference)");
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const ok =
      onPath('apt-get') &&
      spawnSync(apt, [...aptArgs, 'update', '-q'], { stdio: 'inherit', env }).status === 0 &&
      spawnSync(apt, [...aptArgs, 'install', '-y', '-q', '--no-install-recommends', 'python3-torch'], {
        stdio: 'inherit',
        env,
      }).status === 0;
    if (!ok || !torch())
      log('warning: python3-torch did not install; the bench runs without its PyTorch column and says so');
  }
}

// 2. npm packages through pnpm, re-run only when a manifest or the lockfile changed.
const manifests = [
  'package.json',
  'pnpm-lock.yaml',
  'pnpm-workspace.yaml',
  'packages/shared/package.json',
  'packages/coordinator/package.json',
  'packages/worker/package.json',
  'test/package.json',
];
const hash = createHash('sha256');
for (const m of manifests) hash.update(readFileSync(join(root, m)));
const digest = hash.digest('hex');
const stamp = join(root, 'node_modules', '.gantry-install');
if (!existsSync(stamp) || readFileSync(stamp, 'utf8') !== digest) {
  log(`installing npm packages with ${PNPM}`);
  run('npx', ['-y', PNPM, 'install', '--frozen-lockfile'], {
    env: { ...process.env, CI: process.env.CI ?? 'true' },
  });
  writeFileSync(stamp, digest);
}
// 3. The trainer's compiled entry (packages/worker/bin/compiled-entry.mjs), so that the first trial does not
// build it; a few ms when it is fresh already. Trainers build it themselves, or use tsx, when this fails.
try {
  const { compiledEntry } = await import('../packages/worker/bin/compiled-entry.mjs');
  const built = await compiledEntry({ entry: join(root, 'packages/worker/src/trainer-process.ts') });
  if (built?.built) log('compiled the trainer entry');
} catch (err) {
  log(`warning: the trainer entry did not compile (${err.message}); trainers start through tsx`);
}
try {
  execFileSync(process.execPath, ['-e', "import('@tensorflow/tfjs-backend-wasm')"], {
    cwd: join(root, 'packages/worker'),
    stdio: 'ignore',
  });
} catch {
  log('warning: @tensorflow/tfjs-backend-wasm does not load; training will fail');
}
log('ready');
