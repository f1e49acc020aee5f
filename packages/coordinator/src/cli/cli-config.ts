import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** What the CLI needs to reach a coordinator: where, and the bearer token when it requires one. */
export interface CliTarget {
  url: string;
  token?: string;
  /** Where the token came from, for error messages (never the token itself). */
  tokenSource?: string;
}

function sameOrigin(a: string, b: string): boolean {
  try {
    return new URL(a).origin === new URL(b).origin;
  } catch {
    return false;
  }
}

/** `$GANTRY_CLI_CONFIG`, else `~/.config/gantry/cli.json`. */
export function cliConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.GANTRY_CLI_CONFIG || join(env.HOME || homedir(), '.config', 'gantry', 'cli.json');
}

/**
 * The coordinator the CLI talks to: `--api`, else GANTRY_API_URL, else `api_url` of the CLI config file,
 * else http://127.0.0.1:8080; the token from GANTRY_API_TOKEN, else `token` of that file. The file is
 * JSON: `{ "api_url": "https://gantry.example:8080", "token": "..." }` (keep it mode 600).
 * @throws Error naming the file when it exists but is not such JSON
 */
export function cliTarget(flagUrl: string | undefined, env: NodeJS.ProcessEnv = process.env): CliTarget {
  const path = cliConfigPath(env);
  let file: { api_url?: unknown; token?: unknown } = {};
  let text: string | undefined;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    // no config file: environment and defaults only
  }
  if (text !== undefined) {
    try {
      file = JSON.parse(text) as typeof file;
    } catch (err) {
      throw new Error(`${path}: not JSON (${(err as Error).message})`);
    }
    for (const k of ['api_url', 'token'] as const) {
      if (file[k] !== undefined && typeof file[k] !== 'string')
        throw new Error(`${path}: ${k} must be a string`);
    }
  }
  const url =
    flagUrl ?? (env.GANTRY_API_URL || (file.api_url as string | undefined) || 'http://127.0.0.1:8080');
  if (env.GANTRY_API_TOKEN) return { url, token: env.GANTRY_API_TOKEN, tokenSource: 'GANTRY_API_TOKEN' };
  // The file's token goes to the file's coordinator only, never to another URL given on the command line.
  if (typeof file.token === 'string' && file.token) {
    const fileUrl = typeof file.api_url === 'string' ? file.api_url : undefined;
    if (fileUrl === undefined || sameOrigin(fileUrl, url))
      return { url, token: file.token, tokenSource: path };
  }
  return { url };
}
