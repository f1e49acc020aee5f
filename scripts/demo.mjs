#!/usr/bin/env node
// `npm run demo`: starts the local stack (`gantry up --workers 2`), submits examples/dcgan-fashion.yaml,
// shows live progress, prints the leaderboard and where the sample grids are, then stops the stack.
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const gantry = join(root, 'packages/coordinator/bin/gantry.mjs');
const spec = process.argv[2] ?? join(root, 'examples/dcgan-fashion.yaml');
const workers = process.env.GANTRY_DEMO_WORKERS ?? '2';
const say = (msg) => process.stdout.write(`${msg}\n`);

const freePort = () =>
  new Promise((resolve, reject) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });

const port = await freePort();
const apiUrl = `http://127.0.0.1:${port}`;
const env = {
  ...process.env,
  GANTRY_API_URL: apiUrl,
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
};
const started = Date.now();
say(`demo: starting the local stack with ${workers} workers (Redis, S3, coordinator on ${apiUrl})`);
const up = spawn(
  process.execPath,
  [gantry, 'up', '--workers', workers, '--port', String(port), '--data-dir', join(root, '.gantry/demo')],
  {
    cwd: root,
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
  },
);
let upOut = '';
up.stdout.on('data', (b) => {
  upOut += b;
});
const upExited = new Promise((r) => up.once('exit', r));

for (let i = 0; ; i++) {
  try {
    const res = await fetch(`${apiUrl}/healthz`);
    const { workers: live } = await (await fetch(`${apiUrl}/v1/workers`)).json();
    if (res.ok && live.length >= Number(workers)) break;
  } catch {
    // not up yet
  }
  if (up.exitCode !== null || i > 240) {
    process.stderr.write(`demo: the stack did not come up:\n${upOut}\n`);
    process.exit(1);
  }
  await new Promise((r) => setTimeout(r, 500));
}
say(upOut.trim());
say(`demo: stack up after ${((Date.now() - started) / 1000).toFixed(1)} s; submitting ${spec}`);

const submit = spawn(process.execPath, [gantry, 'submit', spec, '--watch'], {
  cwd: root,
  env,
  stdio: 'inherit',
});
const code = await new Promise((r) => submit.once('exit', r));
say(
  `demo: sweep finished with exit code ${code} after ${((Date.now() - started) / 1000).toFixed(1)} s wall time`,
);
try {
  const { sweeps } = await (await fetch(`${apiUrl}/v1/sweeps`)).json();
  const sweep = await (await fetch(`${apiUrl}/v1/sweeps/${sweeps[0].id}`)).json();
  const dir = join(root, '.gantry/demo/samples', sweep.id);
  await mkdir(dir, { recursive: true });
  for (const t of sweep.trials) {
    const res = await fetch(`${apiUrl}/v1/trials/${t.id}/samples/latest.png`);
    if (!res.ok) continue;
    const file = join(dir, `${t.id}.png`);
    await writeFile(file, Buffer.from(await res.arrayBuffer()));
    say(`demo: sample grid of ${t.id} (step ${res.headers.get('x-gantry-step')}): ${file}`);
    // Staged trials: the grid at the end of every stage too, one per resolution.
    if (!t.stage) continue;
    const { stageEvents = [] } = await (await fetch(`${apiUrl}/v1/trials/${t.id}`)).json();
    for (const e of stageEvents.filter((ev) => ev.event === 'done')) {
      const grid = await fetch(`${apiUrl}/v1/trials/${t.id}/samples/${e.step}.png`);
      if (!grid.ok) continue;
      const stageFile = join(dir, `${t.id}-stage${e.stage + 1}-${e.resolution}x${e.resolution}.png`);
      await writeFile(stageFile, Buffer.from(await grid.arrayBuffer()));
      say(
        `demo: stage ${e.stage + 1} (${e.resolution}x${e.resolution}) grid at step ${e.step}: ${stageFile}`,
      );
    }
  }
} catch (err) {
  say(`demo: could not save the sample grids: ${err.message}`);
}
up.kill('SIGINT');
await upExited;
process.exit(code ?? 1);
