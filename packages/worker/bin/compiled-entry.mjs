// The compiled entry of a child process: its TypeScript sources (this repository's own; packages from
// node_modules stay imports) bundled once with the esbuild that tsx ships, kept in a cache folder with the
// SHA-256 of every source it was built from, so that a fork loads one JavaScript file instead of
// registering tsx and transpiling ~100 modules (about 1.5 s of a trainer's start-up). Plain JavaScript:
// it runs before any TypeScript can.
//
// A bundle is used only while every source it was built from hashes as recorded, under the same Node,
// esbuild and lockfile; otherwise it is built again (~0.3 s) and, if that fails, the caller falls back to
// tsx. Never committed: the cache lives under node_modules/.cache.
import { createHash } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** Bump when the way bundles are built changes (every cached one is then stale). */
const FORMAT = 3;
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** Where the worker's compiled entries are kept. */
export const COMPILED_ENTRY_DIR = fileURLToPath(
  new URL('../node_modules/.cache/gantry-entries/', import.meta.url),
);
/** Where they are kept when COMPILED_ENTRY_DIR cannot be written (a read-only node_modules, another user). */
const FALLBACK_DIR = join(tmpdir(), `gantry-entries-${process.getuid?.() ?? 'user'}`);
/** Errors of a cache folder that cannot be written, for which the fallback folder is tried. */
const UNWRITABLE = new Set(['EACCES', 'EPERM', 'EROFS', 'ENOSPC']);

const cpuMs = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
};
const sha256 = (data) => createHash('sha256').update(data).digest('hex');

// tsx's own esbuild: no dependency of ours, and the version tsx transpiles with. Loading it takes ~0.3 s:
// only to build; a fresh bundle is recognised by its package.json's version.
const fromTsx = () => createRequire(createRequire(import.meta.url).resolve('tsx/package.json'));
const esbuildVersion = () => fromTsx()('esbuild/package.json').version;

/**
 * Files that shape a bundle without being among its inputs: the lockfile (the packages' absolute paths),
 * tsconfig.json (which imports esbuild drops), the manifests (exports and "type") and this builder itself.
 */
const SHAPING_FILES = [
  'pnpm-lock.yaml',
  'tsconfig.json',
  'package.json',
  'packages/shared/package.json',
  'packages/worker/package.json',
  'packages/worker/bin/compiled-entry.mjs',
];

/** What a bundle depends on besides its sources, including where the checkout is (its paths are absolute). */
async function environmentKey() {
  const files = await Promise.all(
    SHAPING_FILES.map(async (f) => sha256(await readFile(join(ROOT, f)).catch(() => Buffer.alloc(0)))),
  );
  return sha256(
    JSON.stringify({
      format: FORMAT,
      node: process.version,
      esbuild: esbuildVersion(),
      root: realpathSync(ROOT),
      files,
    }),
  );
}

/**
 * Packages imported for their exports only: an import of one whose bindings the bundle's code never uses
 * is left out (`@gantry/shared`'s index imports ioredis, pino and yaml, which a trainer never calls: ~0.1 s
 * of CPU). Every other package keeps its import (tfjs registers kernels and backends on import).
 */
const SIDE_EFFECT_FREE = ['ioredis', 'pino', 'yaml', 'zod', 'pngjs', 'bullmq', 'prom-client', '@aws-sdk/'];

const packageTypes = new Map();

/** Whether Node loads `file` as CommonJS (.cjs, or .js under a package.json without "type": "module"). */
async function isCommonJs(file) {
  if (file.endsWith('.cjs')) return true;
  if (!file.endsWith('.js')) return false;
  for (let dir = dirname(file); dir !== dirname(dir); dir = dirname(dir)) {
    if (!packageTypes.has(dir)) {
      const raw = await readFile(join(dir, 'package.json'), 'utf8').catch(() => undefined);
      packageTypes.set(dir, raw === undefined ? undefined : (JSON.parse(raw).type ?? 'commonjs'));
    }
    const type = packageTypes.get(dir);
    if (type !== undefined) return type !== 'module';
  }
  return true;
}

/**
 * esbuild plugin: packages other than the workspace's (`@gantry/*`) stay imports, by absolute path (so the
 * bundle resolves them as its sources did, wherever it lies), and `import.meta.url` in a source is that
 * source's own URL (its paths to assets and entry scripts stay right).
 */
const workspaceOnly = {
  name: 'gantry-workspace-only',
  setup(build) {
    build.onResolve({ filter: /^[^./]/ }, async (args) => {
      if (args.pluginData?.inner || args.path.startsWith('@gantry/')) return undefined;
      if (args.path.startsWith('node:')) return { external: true };
      const r = await build.resolve(args.path, {
        kind: args.kind,
        resolveDir: args.resolveDir,
        importer: args.importer,
        pluginData: { inner: true },
      });
      if (r.errors.length > 0) return { errors: r.errors };
      const pure = SIDE_EFFECT_FREE.some(
        (p) => args.path === p || (p.endsWith('/') && args.path.startsWith(p)),
      );
      const sideEffects = pure ? { sideEffects: false } : {};
      // A CommonJS package is required, not imported: Node's ESM loader scans a CommonJS file's whole source
      // for its export names first (~0.15 s of CPU for tfjs-core and the AWS SDK together).
      if (await isCommonJs(r.path)) return { path: r.path, namespace: 'gantry-cjs', ...sideEffects };
      return { path: r.path, external: true, ...sideEffects };
    });
    build.onLoad({ filter: /.*/, namespace: 'gantry-cjs' }, (args) => ({
      contents: `module.exports = require(${JSON.stringify(args.path)});`,
      loader: 'js',
    }));
    build.onResolve({ filter: /.*/, namespace: 'gantry-cjs' }, (args) => ({
      path: args.path,
      external: true,
    }));
    build.onLoad({ filter: /\.ts$/ }, async (args) => {
      const source = await readFile(args.path, 'utf8');
      if (/import\.meta\.(?!url\b)/.test(source))
        return { errors: [{ text: `${args.path}: import.meta other than .url cannot be bundled` }] };
      const url = JSON.stringify(pathToFileURL(args.path).href);
      return { contents: source.replaceAll('import.meta.url', url), loader: 'ts' };
    });
  },
};

/** The record of `name`'s bundle, if one is there. */
async function readRecord(cacheDir, name) {
  try {
    return JSON.parse(await readFile(join(cacheDir, `${name}.json`), 'utf8'));
  } catch {
    return undefined;
  }
}

/** Whether `record`'s bundle is there and was built from the sources and environment as they are now. */
async function fresh(cacheDir, record, key) {
  if (!record || record.key !== key || typeof record.bundle !== 'string') return false;
  try {
    await stat(join(cacheDir, record.bundle));
    const hashes = await Promise.all(
      Object.keys(record.inputs).map(async (file) => sha256(await readFile(join(ROOT, file)))),
    );
    return Object.values(record.inputs).every((h, i) => h === hashes[i]);
  } catch {
    return false; // a source gone or unreadable
  }
}

/** Bundles `entry` into `cacheDir` (the bundle first, then its record, each by rename: readers see whole files). */
async function build(entry, cacheDir, name, key) {
  const esbuild = fromTsx()('esbuild');
  const result = await esbuild.build({
    entryPoints: [entry],
    absWorkingDir: ROOT,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: `node${process.versions.node.split('.')[0]}`,
    outfile: join(cacheDir, `${name}.mjs`),
    write: false,
    sourcemap: 'external',
    metafile: true,
    logLevel: 'silent',
    // The `require` of the CommonJS packages (see workspaceOnly).
    banner: {
      js: "import { createRequire as __gantryCreateRequire } from 'node:module';\nconst require = __gantryCreateRequire(import.meta.url);",
    },
    plugins: [workspaceOnly],
  });
  const js = result.outputFiles.find((f) => f.path.endsWith('.mjs'));
  const map = result.outputFiles.find((f) => f.path.endsWith('.map'));
  if (!js || !map) throw new Error('esbuild wrote no bundle');
  const bundle = `${name}-${sha256(js.contents).slice(0, 16)}.mjs`;
  const inputs = {};
  await Promise.all(
    // Files only (not the CommonJS packages' stand-ins, `gantry-cjs:<path>`).
    Object.keys(result.metafile.inputs)
      .filter((file) => !file.startsWith('gantry-cjs:'))
      .map(async (file) => {
        inputs[file] = sha256(await readFile(join(ROOT, file)));
      }),
  );
  await mkdir(cacheDir, { recursive: true });
  const tmp = `.${process.pid}-${Date.now().toString(36)}`;
  const put = async (file, data) => {
    await writeFile(join(cacheDir, file + tmp), data);
    await rename(join(cacheDir, file + tmp), join(cacheDir, file));
  };
  await put(`${bundle}.map`, map.contents);
  await put(bundle, Buffer.concat([js.contents, Buffer.from(`//# sourceMappingURL=${bundle}.map\n`)]));
  await put(`${name}.json`, JSON.stringify({ key, bundle, inputs }));
  // Older bundles of this entry, once nobody can be about to load them.
  for (const f of await readdir(cacheDir)) {
    if (!f.startsWith(`${name}-`) || f.startsWith(bundle)) continue;
    const s = await stat(join(cacheDir, f)).catch(() => undefined);
    if (s && Date.now() - s.mtimeMs > 60_000) await rm(join(cacheDir, f), { force: true });
  }
  return join(cacheDir, bundle);
}

/**
 * The path of a fresh bundle of TypeScript entry `entry` (absolute), building it first when there is none
 * or the one there is stale (unless `build` is false). Throws when it cannot be built.
 * @param {{ entry: string, cacheDir?: string, build?: boolean }} options
 * @returns {Promise<{ path: string, built: boolean } | undefined>}
 */
export async function compiledEntry({ entry, cacheDir, build: mayBuild = true }) {
  // Without a folder named, the worker's own and, where that cannot be written, one in the temp folder.
  const dirs = cacheDir ? [cacheDir] : [COMPILED_ENTRY_DIR, FALLBACK_DIR];
  const name = basename(entry).replace(/\.ts$/, '');
  const key = await environmentKey();
  for (const dir of dirs) {
    const record = await readRecord(dir, name);
    if (await fresh(dir, record, key)) return { path: join(dir, record.bundle), built: false };
  }
  if (!mayBuild) return undefined;
  for (const [i, dir] of dirs.entries()) {
    try {
      return { path: await build(entry, dir, name, key), built: true };
    } catch (err) {
      if (i === dirs.length - 1 || !UNWRITABLE.has(err?.code)) throw err;
    }
  }
}

/**
 * Runs TypeScript entry `entry` (a path relative to the calling script's folder): from its compiled bundle
 * when one is fresh or can be built, else through tsx. Marks `gantry:loader` (detail.entry says which).
 * @param {string} callerUrl the calling script's import.meta.url
 * @param {string} entry
 */
export async function runEntry(callerUrl, entry) {
  const path = fileURLToPath(new URL(entry, callerUrl));
  let compiled;
  try {
    compiled = await compiledEntry({ entry: path });
  } catch {
    compiled = undefined; // no esbuild, a read-only disk, a source esbuild refuses: tsx runs it
  }
  if (compiled) {
    // Stack traces name the bundle's lines (each source begins with a `// path` comment there); with
    // NODE_OPTIONS=--enable-source-maps they name the TypeScript sources, as under tsx, for ~0.1 s more
    // start-up (tfjs' own maps are read too).
    performance.mark('gantry:loader', { detail: { entry: 'compiled', cpu: cpuMs() } });
    try {
      await import(pathToFileURL(compiled.path).href);
      return;
    } catch (err) {
      // A package moved since the bundle was built (an import, or a CommonJS require as the bundle starts):
      // tsx instead.
      if (err?.code !== 'ERR_MODULE_NOT_FOUND' && err?.code !== 'MODULE_NOT_FOUND') throw err;
    }
  }
  const { register } = await import('tsx/esm/api');
  register();
  performance.mark('gantry:loader', { detail: { entry: 'tsx', cpu: cpuMs() } });
  await import(pathToFileURL(path).href);
}
