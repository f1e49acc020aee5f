import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  type ApiToken,
  envToken,
  isLoopbackHost,
  parseTokenFile,
  redactUrl,
  refuseOpenDoor,
  TokenAuthenticator,
} from './auth.ts';
import { loadConfig } from './config.ts';

const ADMIN = 'admin-token-0123456789abcdef';
const READER = 'read-token-0123456789abcdef';

describe('token files', () => {
  it('reads roles and names, skipping comments, and names the line of each problem without the token', () => {
    const { tokens, issues } = parseTokenFile(
      [
        '# Gantry API tokens',
        `admin alice ${ADMIN}`,
        '',
        `read grafana ${READER}`,
        'read bob short',
        `owner carol ${ADMIN}x`,
        `read alice ${READER}y`,
        'admin dave',
      ].join('\n'),
      '/etc/gantry/tokens',
    );
    expect(tokens.map((t) => [t.role, t.name])).toEqual([
      ['admin', 'alice'],
      ['read', 'grafana'],
    ]);
    expect(issues).toEqual([
      { path: '/etc/gantry/tokens:5', message: 'a token must be at least 16 characters' },
      { path: '/etc/gantry/tokens:6', message: 'the first field (role) must be admin or read' },
      {
        path: '/etc/gantry/tokens:7',
        message: expect.stringMatching(/second field \(name\) must be unique/),
      },
      { path: '/etc/gantry/tokens:8', message: 'expected `<role> <name> <token>`' },
    ]);
    expect(JSON.stringify(issues)).not.toContain('short');
    // A line in the wrong order puts the token where the role or name goes: never echoed.
    const swapped = parseTokenFile(`${ADMIN} admin alice\nadmin ${READER} x`, 'f');
    expect(swapped.issues).toHaveLength(2);
    expect(JSON.stringify(swapped.issues)).not.toMatch(/token-0123/);
    expect(JSON.stringify(tokens)).not.toContain(ADMIN);
  });

  it('loadConfig takes GANTRY_API_TOKEN and a token file, and refuses weak tokens naming the variable', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gantry-tokens-'));
    const file = join(dir, 'tokens');
    writeFileSync(file, `read grafana ${READER}\n`);
    const c = loadConfig({ GANTRY_API_TOKEN: ADMIN, GANTRY_API_TOKENS_FILE: file });
    expect(c.api.tokens.map((t) => `${t.role}:${t.name}`)).toEqual(['admin:env', 'read:grafana']);
    expect(JSON.stringify(c)).not.toContain(ADMIN);
    expect(() => loadConfig({ GANTRY_API_TOKEN: 'letmein' })).toThrow(
      /GANTRY_API_TOKEN: a token must be at least 16 characters/,
    );
    expect(() => loadConfig({ GANTRY_API_TOKENS_FILE: join(dir, 'missing') })).toThrow(
      /GANTRY_API_TOKENS_FILE: cannot read .*missing: ENOENT/,
    );
    expect(() => loadConfig({ REDIS_URL: 'http://example.com' })).toThrow(
      /REDIS_URL: must be a redis:\/\/ or rediss:\/\//,
    );
  });
});

describe('TokenAuthenticator', () => {
  const auth = new TokenAuthenticator([
    envToken(ADMIN) as ApiToken,
    ...parseTokenFile(`read grafana ${READER}`, 'f').tokens,
  ]);

  it('accepts known bearer tokens with their role and refuses anything else', () => {
    expect(auth.authenticate(`Bearer ${ADMIN}`)).toMatchObject({
      ok: true,
      token: { name: 'env', role: 'admin' },
    });
    expect(auth.authenticate(`bearer ${READER}`)).toMatchObject({ ok: true, token: { role: 'read' } });
    for (const bad of [
      undefined,
      '',
      ADMIN,
      `Basic ${ADMIN}`,
      `Bearer ${ADMIN}x`,
      `Bearer ${ADMIN.slice(0, -1)}`,
      'Bearer ',
    ]) {
      expect(auth.authenticate(bad)).toMatchObject({ ok: false, status: 401, code: 'UNAUTHORIZED' });
    }
    expect(new TokenAuthenticator([]).enabled).toBe(false);
  });
});

describe('network exposure', () => {
  it('knows loopback addresses', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]'])
      expect(isLoopbackHost(h)).toBe(true);
    for (const h of ['0.0.0.0', '::', '10.0.0.5', 'gantry.example', '128.0.0.1'])
      expect(isLoopbackHost(h)).toBe(false);
  });

  it('refuses to open a non-loopback API without tokens, saying what to set', () => {
    expect(() => refuseOpenDoor('0.0.0.0', 0)).toThrow(/listen on 0\.0\.0\.0.*set GANTRY_API_TOKEN/);
    expect(() => refuseOpenDoor('0.0.0.0', 1)).not.toThrow();
    expect(() => refuseOpenDoor('127.0.0.1', 0)).not.toThrow();
  });

  it('redacts passwords from URLs', () => {
    expect(redactUrl('rediss://:s3cret@redis.example:6380/2')).toBe('rediss://:***@redis.example:6380/2');
    expect(redactUrl('redis://127.0.0.1:6379')).toBe('redis://127.0.0.1:6379');
  });
});
