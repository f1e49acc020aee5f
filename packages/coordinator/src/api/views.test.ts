import { describe, expect, it } from 'vitest';
import { jsonInPieces } from './views.ts';

describe('jsonInPieces', () => {
  it('writes what JSON.stringify writes, in pieces of any size', async () => {
    const head = { id: 's', state: 'running', best: null, nested: { a: [1, 2] } };
    const items = Array.from({ length: 7 }, (_, i) => ({ i, name: `t${i}`, v: i % 2 ? undefined : i / 3 }));
    const whole = JSON.stringify({ ...head, trials: items });
    for (const chunk of [1, 2, 3, 7, 100])
      expect(await jsonInPieces(head, 'trials', items, chunk)).toBe(whole);
    expect(await jsonInPieces(head, 'trials', [])).toBe(JSON.stringify({ ...head, trials: [] }));
    expect(JSON.parse(await jsonInPieces({}, 'xs', [undefined, 'a'], 1))).toEqual({ xs: [null, 'a'] });
  });
});
