import { mkdtemp, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Coordinator } from '@gantry/coordinator';
import { createLogger, LIMITS } from '@gantry/shared';
import { afterEach, describe, expect, it } from 'vitest';
import { testConfig } from './support/infra.ts';

const ADMIN = 'admin-token-for-tests-0123456789';
const READER = 'read-token-for-tests-0123456789';
const OTHER_ADMIN = 'second-admin-token-0123456789';

const started: Coordinator[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((c) => c.close()));
});

async function tokenFile(): Promise<string> {
  const file = join(await mkdtemp(join(tmpdir(), 'gantry-tokens-')), 'tokens');
  await writeFile(
    file,
    `# test tokens\nadmin alice ${ADMIN}\nread grafana ${READER}\nadmin bob ${OTHER_ADMIN}\n`,
  );
  return file;
}

async function coordinator(env: NodeJS.ProcessEnv = {}): Promise<Coordinator> {
  const c = new Coordinator(
    testConfig({ GANTRY_API_TOKENS_FILE: await tokenFile(), ...env }),
    createLogger('test', 'silent'),
    { schedulerIntervalMs: 60_000 },
  );
  started.push(c);
  await c.start();
  return c;
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const spec = JSON.stringify({
  name: 'auth-test',
  model: 'dcgan',
  dataset: 'mnist',
  method: 'grid',
  budget: { parallel: 1, steps: 20 },
  parameters: { lr_g: { values: [1e-4, 2e-4] } },
});

describe('API authentication and roles', () => {
  it('asks for a token everywhere but /healthz, with the API error shape', async () => {
    const c = await coordinator();
    expect((await c.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    for (const url of [
      '/v1/sweeps',
      '/v1/workers',
      '/v1/datasets',
      '/metrics',
      '/v1/prometheus/targets',
      '/v1/trials/x-t000',
    ]) {
      for (const headers of [{}, bearer('not-a-token-at-all-0123'), { authorization: ADMIN }]) {
        const res = await c.app.inject({ method: 'GET', url, headers });
        expect(res.statusCode, `${url} ${JSON.stringify(headers)}`).toBe(401);
        expect(res.headers['www-authenticate']).toBe('Bearer realm="gantry"');
        expect(res.json()).toEqual({
          error: { code: 'UNAUTHORIZED', message: expect.stringMatching(/token/) },
        });
      }
    }
  });

  it('lets read tokens view and scrape, and only admin tokens submit, cancel and push', async () => {
    const c = await coordinator();
    for (const url of ['/v1/sweeps', '/v1/workers', '/v1/datasets', '/metrics', '/v1/prometheus/targets']) {
      const res = await c.app.inject({ method: 'GET', url, headers: bearer(READER) });
      expect(res.statusCode, url).toBe(200);
    }
    const refused = await c.app.inject({
      method: 'POST',
      url: '/v1/sweeps',
      headers: { ...bearer(READER), 'content-type': 'application/json' },
      payload: spec,
    });
    expect(refused.statusCode).toBe(403);
    expect(refused.json().error).toEqual({
      code: 'FORBIDDEN',
      message: "token 'grafana' has the read role; POST /v1/sweeps needs an admin token",
    });
    // Refused before the spec was looked at: nothing stored, nothing queued.
    expect(await c.store.list(10)).toEqual([]);
    expect(await c.queue.getJobCounts()).toMatchObject({ waiting: 0, active: 0, delayed: 0 });
    for (const url of ['/v1/sweeps/x/cancel', '/v1/datasets?name=x']) {
      expect((await c.app.inject({ method: 'POST', url, headers: bearer(READER) })).statusCode, url).toBe(
        403,
      );
    }
    const ok = await c.app.inject({
      method: 'POST',
      url: '/v1/sweeps',
      headers: { ...bearer(ADMIN), 'content-type': 'application/json' },
      payload: spec,
    });
    expect(ok.statusCode, ok.body).toBe(201);
  });

  it('answers a flood of writes from one token with 429 and Retry-After, leaving other tokens alone', async () => {
    const c = await coordinator({ GANTRY_RATE_LIMIT: '3' });
    const cancel = (token: string) =>
      c.app.inject({ method: 'POST', url: '/v1/sweeps/no-such-sweep/cancel', headers: bearer(token) });
    for (let i = 0; i < 3; i++) expect((await cancel(ADMIN)).statusCode).toBe(404);
    const limited = await cancel(ADMIN);
    expect(limited.statusCode).toBe(429);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(limited.json().error.code).toBe('RATE_LIMITED');
    expect((await cancel(OTHER_ADMIN)).statusCode).toBe(404);
    // Reads are not limited.
    for (let i = 0; i < 5; i++) {
      expect(
        (await c.app.inject({ method: 'GET', url: '/v1/sweeps', headers: bearer(ADMIN) })).statusCode,
      ).toBe(200);
    }
  });
});

describe('inference and roles', () => {
  it('lets read tokens run inference (it changes nothing), limited per token like writes', async () => {
    const c = await coordinator({ GANTRY_RATE_LIMIT: '2' });
    const infer = (headers: Record<string, string>) =>
      c.app.inject({ method: 'POST', url: '/v1/trials/no-such-sweep-t000/infer', headers });
    expect((await infer({})).statusCode).toBe(401);
    for (let i = 0; i < 2; i++) expect((await infer(bearer(READER))).statusCode).toBe(404);
    const limited = await infer(bearer(READER));
    expect(limited.statusCode).toBe(429);
    expect(limited.json().error.code).toBe('RATE_LIMITED');
    expect((await infer(bearer(ADMIN))).statusCode).toBe(404);
  });
});

describe('hostile input at the API', () => {
  it('refuses ids that would reach other keys or paths, naming the parameter', async () => {
    const c = await coordinator();
    const cases: [string, string, string][] = [
      ['GET', '/v1/sweeps/..%2F..%2Fetc', 'id'],
      ['GET', '/v1/sweeps/a:trial:b', 'id'],
      ['POST', '/v1/sweeps/A%20B/cancel', 'id'],
      ['GET', '/v1/trials/x-t000:history', 'id'],
      ['GET', '/v1/trials/..%2Fx/samples/latest.png', 'id'],
      ['GET', '/v1/trials/x-t000/samples/-1.png', 'step'],
      ['GET', '/v1/trials/x-t000/samples/1e3.png', 'step'],
      ['GET', '/v1/datasets/..%2F..%2Fsweeps', 'name'],
      ['POST', '/v1/trials/..%2Fx/infer', 'id'],
      ['POST', '/v1/trials/x-t000/infer?step=-1', 'step'],
      ['POST', '/v1/trials/x-t000/infer?count=1e3', 'count'],
    ];
    for (const [method, url, param] of cases) {
      const res = await c.app.inject({ method: method as 'GET', url, headers: bearer(ADMIN) });
      expect(res.statusCode, url).toBe(400);
      expect(res.json().error.code, url).toBe('BAD_REQUEST');
      expect(res.json().error.issues[0].path, url).toBe(param);
    }
    const long = await c.app.inject({
      method: 'GET',
      url: `/v1/sweeps/${'a'.repeat(300)}`,
      headers: bearer(ADMIN),
    });
    expect(long.statusCode).toBe(400);
    expect(long.json().error.issues[0].path).toBe('id');
  });

  it('refuses an oversized spec with 413 and stores nothing', async () => {
    const c = await coordinator();
    const res = await c.app.inject({
      method: 'POST',
      url: '/v1/sweeps',
      headers: { ...bearer(ADMIN), 'content-type': 'application/yaml' },
      payload: `name: big\n# ${'x'.repeat(LIMITS.specBytes)}\n`,
    });
    expect(res.statusCode).toBe(413);
    expect(res.json().error.code).toBe('PAYLOAD_TOO_LARGE');
    expect(await c.store.list(10)).toEqual([]);
  });

  it('cuts off a client that stops sending mid-request', async () => {
    const c = new Coordinator(
      testConfig({ GANTRY_API_TOKENS_FILE: await tokenFile(), GANTRY_IDLE_TIMEOUT_MS: '500' }),
      createLogger('test', 'silent'),
      { schedulerIntervalMs: 60_000 },
    );
    started.push(c);
    const url = new URL((await c.start({ host: '127.0.0.1', port: 0 }))!);
    // Headers begun, never finished (a slow-loris client); then one with a body that never comes.
    for (const partial of [
      'GET /v1/sweeps HTTP/1.1\r\nHost: x\r\nX-Slow: ',
      `POST /v1/sweeps HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"name":`,
    ]) {
      const socket = connect(Number(url.port), url.hostname);
      let answer = '';
      socket.on('data', (d) => {
        answer += d.toString();
      });
      socket.write(partial);
      const closed = await new Promise<boolean>((resolve) => {
        socket.once('close', () => resolve(true));
        socket.once('error', () => resolve(true));
        setTimeout(() => resolve(false), 20_000).unref();
      });
      expect(closed, `server closed the connection (${partial.slice(0, 20)})`).toBe(true);
      if (answer) expect(answer).toMatch(/^HTTP\/1\.1 408/);
    }
    expect(await c.store.list(10)).toEqual([]);
  });
});
