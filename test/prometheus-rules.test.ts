import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { findOnPath } from '../packages/coordinator/src/local-stack/index.ts';

const root = join(import.meta.dirname, '..');
const infra = join(root, 'infra', 'prometheus');
const rulesDir = join(infra, 'rules');
const testsDir = join(infra, 'tests');
const ruleFiles = readdirSync(rulesDir)
  .filter((f) => f.endsWith('.yml'))
  .map((f) => join(rulesDir, f));
const testFiles = readdirSync(testsDir)
  .filter((f) => f.endsWith('.yml'))
  .map((f) => join(testsDir, f));

const promtool = await findOnPath('promtool');
const SKIP_REASON = 'promtool is not installed (apt-get install prometheus; `npm test` installs it)';

/** Runs promtool and returns its exit code with everything it printed, so a failure shows promtool's own words. */
function runPromtool(args: string[]): { code: number | null; output: string } {
  const r = spawnSync(promtool!, args, { cwd: root, encoding: 'utf8' });
  return { code: r.status, output: `$ promtool ${args.join(' ')}\n${r.stdout}${r.stderr}${r.error ?? ''}` };
}

describe('Prometheus config and alert rules (promtool)', () => {
  it('has rule files and rule tests to check', () => {
    expect(ruleFiles.length).toBeGreaterThan(0);
    expect(testFiles.length).toBeGreaterThan(0);
  });

  it('prometheus.yml is a valid config and loads the alert rules', ({ skip }) => {
    if (promtool === undefined) return skip(SKIP_REASON);
    const r = runPromtool(['check', 'config', 'infra/prometheus/prometheus.yml']);
    expect(r.code, r.output).toBe(0);
    // Every rule file is loaded through rule_files, so none is silently left out.
    for (const f of ruleFiles) expect(r.output, r.output).toContain(f.slice(root.length + 1));
  });

  it('every rule file is valid', ({ skip }) => {
    if (promtool === undefined) return skip(SKIP_REASON);
    const r = runPromtool(['check', 'rules', ...ruleFiles]);
    expect(r.code, r.output).toBe(0);
  });

  it('the rules pass their promtool unit tests', ({ skip }) => {
    if (promtool === undefined) return skip(SKIP_REASON);
    const r = runPromtool(['test', 'rules', ...testFiles]);
    expect(r.code, r.output).toBe(0);
  });

  it('every alert has a test where it fires and one where it stays silent', () => {
    const alerts = ruleFiles.flatMap((f) =>
      [...readFileSync(f, 'utf8').matchAll(/^\s*- alert:\s*(\w+)/gm)].map((m) => m[1]!),
    );
    expect(alerts.length).toBeGreaterThan(0);
    const fires = new Set<string>();
    const silent = new Set<string>();
    for (const f of testFiles) {
      // `alertname: X, exp_alerts: []` (flow style) or `alertname: X` then `exp_alerts:` with a list or alias.
      for (const m of readFileSync(f, 'utf8').matchAll(/alertname:\s*(\w+)\s*,?\s*exp_alerts:\s*(\[\])?/g)) {
        (m[2] === '[]' ? silent : fires).add(m[1]!);
      }
    }
    expect(
      alerts.filter((a) => !fires.has(a)),
      'alerts without a firing test',
    ).toEqual([]);
    expect(
      alerts.filter((a) => !silent.has(a)),
      'alerts without a not-firing test',
    ).toEqual([]);
  });
});
