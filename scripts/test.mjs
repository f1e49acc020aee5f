#!/usr/bin/env node
// `npm test`: typecheck, lint, then every vitest suite (unit, integration with real Redis/S3, end to end).
// Prints a closing 'N passed, N failed, N skipped' line from vitest's JSON report.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = (name) => join(root, 'node_modules', '.bin', name);
const step = (title, cmd, args) => {
  process.stderr.write(`\n== ${title}\n`);
  const r = spawnSync(cmd, args, {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
  });
  return r.status ?? 1;
};

let failed = 0;
failed += step('typecheck', bin('tsc'), ['-p', 'tsconfig.json']) === 0 ? 0 : 1;
failed += step('lint', bin('biome'), ['check', '.']) === 0 ? 0 : 1;
const report = join(mkdtempSync(join(tmpdir(), 'gantry-test-')), 'vitest.json');
const extra = process.argv.slice(2);
const vitest = step('tests', bin('vitest'), [
  'run',
  '--reporter=default',
  '--reporter=json',
  `--outputFile.json=${report}`,
  ...extra,
]);
let summary = '';
try {
  const r = JSON.parse(readFileSync(report, 'utf8'));
  summary = `${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`;
} catch {
  summary = '0 passed, 1 failed';
}
if (failed > 0) process.stderr.write(`\n${failed} check(s) before the tests failed (typecheck/lint)\n`);
process.stdout.write(`\n${summary}\n`);
process.exit(failed > 0 || vitest !== 0 ? 1 : 0);
