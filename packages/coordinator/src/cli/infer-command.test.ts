import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as jpegJs from 'jpeg-js';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { splitGrid } from './infer-command.ts';

const BIN = join(import.meta.dirname, '../../bin/gantry.mjs');

function png(width: number, height: number, fill: (x: number, y: number) => number): Buffer {
  const p = new PNG({ width, height });
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++)
      p.data.set([fill(x, y), fill(x, y), fill(x, y), 255], (y * width + x) * 4);
  return PNG.sync.write(p, { colorType: 0 });
}

describe('splitGrid', () => {
  it("cuts a grid into its tiles by the API's layout headers", () => {
    // 3 tiles of 2x2, 2 to a row, 1 px apart: tile n has gray level 10 * (n + 1), the gaps 128.
    const grid = png(2 * 2 + 3, 2 * 2 + 3, (x, y) => {
      const col = x === 0 || x === 3 || x === 6 ? -1 : x < 3 ? 0 : 1;
      const row = y === 0 || y === 3 || y === 6 ? -1 : y < 3 ? 0 : 1;
      const n = row * 2 + col;
      return col < 0 || row < 0 || n > 2 ? 128 : 10 * (n + 1);
    });
    const headers = new Headers({
      'x-gantry-count': '3',
      'x-gantry-cols': '2',
      'x-gantry-tile': '2x2',
      'x-gantry-padding': '1',
    });
    const tiles = splitGrid(grid, headers).map((t) => PNG.sync.read(t));
    expect(tiles.map((t) => [t.width, t.height, t.colorType, t.data[0]])).toEqual([
      [2, 2, 0, 10],
      [2, 2, 0, 20],
      [2, 2, 0, 30],
    ]);
    expect(() => splitGrid(grid, new Headers())).toThrow(/x-gantry-\* headers/);
  });
});

describe('gantry infer <trialId> <folder>', () => {
  let server: Server;
  let url: string;
  let work: string;
  const seen: string[] = [];

  // An API stand-in: 4x4 images come back 8x8, anything else is the wrong size; the first request is busy.
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'gantry-infer-cli-'));
    let first = true;
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        seen.push(`${req.method} ${req.url} ${req.headers['content-type']}`);
        if (first) {
          first = false;
          res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '1' });
          res.end(JSON.stringify({ error: { code: 'INFERENCE_BUSY', message: 'busy' } }));
          return;
        }
        const body = Buffer.concat(chunks);
        const isPng = body[0] === 0x89;
        const size = isPng ? PNG.sync.read(body).width : jpegJs.decode(body).width;
        if (size !== 4) {
          res.writeHead(400, { 'content-type': 'application/json' });
          res.end(
            JSON.stringify({
              error: { code: 'WRONG_IMAGE_SIZE', message: `takes 4x4 images; this one is ${size}x${size}` },
            }),
          );
          return;
        }
        res.writeHead(200, { 'content-type': 'image/png', 'x-gantry-step': '40', 'x-gantry-tile': '8x8' });
        res.end(png(8, 8, () => 200));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
    await rm(work, { recursive: true, force: true });
  });

  it('sends each PNG and JPEG, writes <name>.png for each, reports refusals and skips, waits out a busy answer', async () => {
    const input = join(work, 'in');
    await mkdir(input);
    await writeFile(
      join(input, 'a.png'),
      png(4, 4, () => 10),
    );
    const rgba = Buffer.alloc(4 * 4 * 4, 90);
    await writeFile(
      join(input, 'b.jpg'),
      Buffer.from(jpegJs.encode({ width: 4, height: 4, data: rgba }, 90).data),
    );
    await writeFile(
      join(input, 'c.png'),
      png(5, 5, () => 0),
    );
    await writeFile(join(input, 'notes.txt'), 'not an image');
    const out = join(work, 'out');
    const child = spawn(
      process.execPath,
      [BIN, '--api', url, 'infer', 'sw-t000', input, '-o', out, '--step', '40'],
      {
        env: { ...process.env, GANTRY_API_TOKEN: '', GANTRY_CLI_CONFIG: join(work, 'none.json') },
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d;
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d;
    });
    const code = await new Promise<number | null>((r) => child.on('close', r));
    expect(code, stderr).toBe(1);
    expect((await readdir(out)).sort()).toEqual(['a.png', 'b.png']);
    expect(PNG.sync.read(await readFile(join(out, 'a.png'))).width).toBe(8);
    expect(stdout).toContain(`wrote 2 PNGs to ${out} (step 40); 1 refused, 1 skipped (not PNG or JPEG)`);
    expect(stderr).toContain('busy; retrying in 1 s');
    expect(stderr).toContain('c.png: takes 4x4 images; this one is 5x5');
    expect(seen).toEqual([
      'POST /v1/trials/sw-t000/infer?step=40 image/png',
      'POST /v1/trials/sw-t000/infer?step=40 image/png',
      'POST /v1/trials/sw-t000/infer?step=40 image/jpeg',
      'POST /v1/trials/sw-t000/infer?step=40 image/png',
    ]);
  }, 30_000);
});
