import { createHash, timingSafeEqual } from 'node:crypto';
import { ConfigError, type FieldIssue } from './errors.ts';

/** `admin` submits, cancels and pushes data sets; `read` views sweeps, trials, samples and metrics. */
export const API_ROLES = ['admin', 'read'] as const;
export type ApiRole = (typeof API_ROLES)[number];

/** One bearer token the API accepts. Only its hash is kept, so configuration can never leak it. */
export interface ApiToken {
  name: string;
  role: ApiRole;
  sha256: Buffer;
}

/** Tokens shorter than this are refused: a guessable token is no lock. */
export const MIN_TOKEN_LENGTH = 16;

const hash = (token: string): Buffer => createHash('sha256').update(token, 'utf8').digest();

/** Checks one token's text; returns the problem, or undefined. Never echoes the token. */
function tokenProblem(token: string): string | undefined {
  if (token.length < MIN_TOKEN_LENGTH) return `a token must be at least ${MIN_TOKEN_LENGTH} characters`;
  if (!/^[\x21-\x7e]+$/.test(token)) return 'a token is printable ASCII without spaces';
  return undefined;
}

/** The token of GANTRY_API_TOKEN: an admin token named `env`. */
export function envToken(token: string, path = 'GANTRY_API_TOKEN'): ApiToken | FieldIssue {
  const problem = tokenProblem(token);
  return problem ? { path, message: problem } : { name: 'env', role: 'admin', sha256: hash(token) };
}

/**
 * Parses a token file: one token per line as `<role> <name> <token>` (role `admin` or `read`), blank lines
 * and `#` comments ignored. Problems name the file and line, never the token.
 */
export function parseTokenFile(text: string, file: string): { tokens: ApiToken[]; issues: FieldIssue[] } {
  const tokens: ApiToken[] = [];
  const issues: FieldIssue[] = [];
  const names = new Set<string>();
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const path = `${file}:${i + 1}`;
    const parts = line.split(/\s+/);
    if (parts.length !== 3) {
      issues.push({ path, message: 'expected `<role> <name> <token>`' });
      return;
    }
    const [role, name, token] = parts as [string, string, string];
    if (!(API_ROLES as readonly string[]).includes(role)) {
      // Field values are never quoted: a line written in the wrong order would put the token in a log.
      issues.push({ path, message: 'the first field (role) must be admin or read' });
      return;
    }
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name) || names.has(name)) {
      issues.push({
        path,
        message: 'the second field (name) must be unique: letters, digits, _ . - (at most 64)',
      });
      return;
    }
    const problem = tokenProblem(token);
    if (problem) {
      issues.push({ path, message: problem });
      return;
    }
    names.add(name);
    tokens.push({ name, role: role as ApiRole, sha256: hash(token) });
  });
  return { tokens, issues };
}

export type AuthResult =
  | { ok: true; token: ApiToken }
  | { ok: false; status: 401; code: 'UNAUTHORIZED'; message: string };

/**
 * Checks `Authorization: Bearer <token>` headers against the configured tokens. The presented token is
 * hashed and compared with every known hash in constant time, so neither a match nor its position among
 * the tokens shows in the time taken.
 */
export class TokenAuthenticator {
  constructor(private readonly tokens: readonly ApiToken[]) {}

  /** False when no token is configured: the API is open (loopback only, see Coordinator.start). */
  get enabled(): boolean {
    return this.tokens.length > 0;
  }

  authenticate(header: string | string[] | undefined): AuthResult {
    const value = Array.isArray(header) ? header[0] : header;
    const m = value === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(value);
    if (!m) {
      return {
        ok: false,
        status: 401,
        code: 'UNAUTHORIZED',
        message: 'this API needs a bearer token (Authorization: Bearer <token>)',
      };
    }
    const presented = hash(m[1]!);
    let found: ApiToken | undefined;
    for (const t of this.tokens) {
      if (timingSafeEqual(presented, t.sha256) && !found) found = t;
    }
    if (!found)
      return { ok: false, status: 401, code: 'UNAUTHORIZED', message: 'the bearer token is not valid' };
    return { ok: true, token: found };
  }
}

/** True for addresses only this machine can reach: 127.0.0.0/8, ::1, localhost. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h);
}

/**
 * An API reachable from other machines must have tokens: throws, saying what to set, when `host` is not
 * loopback and no token is configured.
 */
export function refuseOpenDoor(host: string, tokens: number, what = 'the coordinator API'): void {
  if (tokens > 0 || isLoopbackHost(host)) return;
  throw new ConfigError([
    {
      path: 'GANTRY_API_TOKEN',
      message: `${what} would listen on ${host}, reachable from other machines, without authentication: set GANTRY_API_TOKEN (an admin token of at least ${MIN_TOKEN_LENGTH} characters) or GANTRY_API_TOKENS_FILE (README, "Authentication"), or listen on 127.0.0.1`,
    },
  ]);
}

/** `url` with any password replaced by `***`, for logs and messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString().replace(/\/$/, '');
  } catch {
    return '(unparseable URL)';
  }
}
