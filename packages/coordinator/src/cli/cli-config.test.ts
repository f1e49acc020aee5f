import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cliTarget } from './cli-config.ts';

const TOKEN = 'file-token-0123456789abcdef';

function configFile(body: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'gantry-cli-')), 'cli.json');
  writeFileSync(file, body);
  return file;
}

describe('cliTarget', () => {
  it('takes the URL from --api, GANTRY_API_URL, the file, then the default; the token from the environment or the file', () => {
    const file = configFile(JSON.stringify({ api_url: 'http://gantry.internal:8080', token: TOKEN }));
    expect(cliTarget(undefined, { GANTRY_CLI_CONFIG: file })).toEqual({
      url: 'http://gantry.internal:8080',
      token: TOKEN,
      tokenSource: file,
    });
    expect(cliTarget(undefined, { GANTRY_CLI_CONFIG: file, GANTRY_API_TOKEN: 'env-token' })).toMatchObject({
      token: 'env-token',
      tokenSource: 'GANTRY_API_TOKEN',
    });
    expect(cliTarget(undefined, { GANTRY_CLI_CONFIG: join(tmpdir(), 'no-such-gantry-cli.json') })).toEqual({
      url: 'http://127.0.0.1:8080',
    });
  });

  it("never sends the file's token to another coordinator than the file's", () => {
    const file = configFile(JSON.stringify({ api_url: 'http://gantry.internal:8080', token: TOKEN }));
    expect(cliTarget('http://elsewhere.example:8080', { GANTRY_CLI_CONFIG: file })).toEqual({
      url: 'http://elsewhere.example:8080',
    });
    expect(cliTarget('http://gantry.internal:8080/', { GANTRY_CLI_CONFIG: file }).token).toBe(TOKEN);
  });

  it('names the file when it is not valid', () => {
    expect(() => cliTarget(undefined, { GANTRY_CLI_CONFIG: configFile('{"token": ') })).toThrow(
      /cli\.json: not JSON/,
    );
    expect(() => cliTarget(undefined, { GANTRY_CLI_CONFIG: configFile('{"token": 5}') })).toThrow(
      /cli\.json: token must be a string/,
    );
  });
});
