import { BadRequestError } from '@gantry/shared';
import { describe, expect, it } from 'vitest';
import { parseExportQuery } from './export-route.ts';

function issuePath(f: () => unknown): string | undefined {
  try {
    f();
  } catch (err) {
    if (err instanceof BadRequestError) return err.issues[0]?.path;
    throw err;
  }
  return undefined;
}

describe('parseExportQuery', () => {
  it('reads step and net, G by default', () => {
    expect(parseExportQuery({})).toEqual({ net: 'g' });
    expect(parseExportQuery({ step: '40', net: 'd' })).toEqual({ step: 40, net: 'd' });
  });

  it.each([
    ['net', 'x'],
    ['net', ['g', 'd']],
    ['step', '-1'],
    ['step', 'latest'],
    ['step', '99999999999'],
    ['format', 'onnx'],
    ['__proto__', '1'],
  ])('refuses %s=%j with 400 naming it', (name, value) => {
    expect(issuePath(() => parseExportQuery(JSON.parse(JSON.stringify({ [name]: value }))))).toBe(name);
  });
});
