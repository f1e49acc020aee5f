import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { ImportanceAnswer } from '../api/search-routes.ts';
import { ApiClient } from './api-client.ts';
import { importanceTable, registerSearchCommands } from './search-commands.ts';

const ANSWER: ImportanceAnswer = {
  sweepId: 'sw-1234',
  metric: { name: 'fld', goal: 'minimize' },
  method: 'eta2-bins',
  trials: 12,
  params: [
    { name: 'lr_g', importance: 0.8, eta2: 0.72, bins: 3, chance: 2 / 11 },
    { name: 'batch_size', importance: 0.2, eta2: 0.18, bins: 3, chance: 2 / 11 },
  ],
};
const PNG_BYTES = Buffer.from([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]);

describe('importanceTable', () => {
  it('writes one row per parameter: share, a bar of 20, eta2, bins and chance', () => {
    expect(importanceTable(ANSWER)).toEqual([
      'parameter importance of sw-1234 by fld over 12 completed trials (eta2-bins):',
      '  parameter   share                        eta2   bins  chance',
      `  lr_g        0.800  ${'#'.repeat(16)}${'.'.repeat(4)}  0.720  3     0.182`,
      `  batch_size  0.200  ${'#'.repeat(4)}${'.'.repeat(16)}  0.180  3     0.182`,
    ]);
  });
});

describe('gantry importance and gantry plot', () => {
  let server: Server;
  let url: string;
  let work: string;
  const seen: string[] = [];

  // An API stand-in answering the two routes for sweep sw-1234.
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'gantry-search-cli-'));
    server = createServer((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      if (req.url === '/v1/sweeps/sw-1234/importance')
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(ANSWER));
      else if (req.url === '/v1/sweeps/sw-1234/parallel.png')
        res.writeHead(200, { 'content-type': 'image/png' }).end(PNG_BYTES);
      else
        res
          .writeHead(409, { 'content-type': 'application/json' })
          .end(JSON.stringify({ error: { code: 'CONFLICT', message: 'no trial has a value of fld yet' } }));
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((ok) => server.close(ok));
    await rm(work, { recursive: true, force: true });
  });

  async function run(...args: string[]): Promise<string> {
    const program = new Command('gantry').exitOverride();
    registerSearchCommands(program, () => new ApiClient(url));
    const out: string[] = [];
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((s) => {
      out.push(String(s));
      return true;
    });
    try {
      await program.parseAsync(['node', 'gantry', ...args]);
    } finally {
      spy.mockRestore();
    }
    return out.join('');
  }

  it('prints the importance table the API answers', async () => {
    const out = await run('importance', 'sw-1234');
    expect(out).toBe(`${importanceTable(ANSWER).join('\n')}\n`);
    expect(seen.at(-1)).toBe('GET /v1/sweeps/sw-1234/importance');
  });

  it('writes the PNG to -o and prints its path; an API refusal comes back as its error', async () => {
    const file = join(work, 'plot.png');
    expect(await run('plot', 'sw-1234', '-o', file)).toBe(`wrote ${file} (7 bytes)\n`);
    expect(await readFile(file)).toEqual(PNG_BYTES);
    await expect(run('plot', 'sw-0000', '-o', file)).rejects.toMatchObject({ status: 409, code: 'CONFLICT' });
  });

  it('explains the estimate and the plot in --help', async () => {
    const program = new Command('gantry');
    registerSearchCommands(program, () => new ApiClient(url));
    const help = (name: string) => {
      const cmd = program.commands.find((c) => c.name() === name)!;
      let text = '';
      cmd.configureOutput({
        writeOut: (s) => {
          text += s;
        },
      });
      cmd.outputHelp();
      return text;
    };
    expect(help('importance')).toMatch(/one-way ANOVA/);
    expect(help('plot')).toMatch(/-o, --output <file>[\s\S]*stopped trial's last evaluation, drawn dimmer/);
  });
});
