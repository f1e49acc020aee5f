import { describe, expect, it } from 'vitest';
import { ValuesError } from './values-error.ts';
import { applySet, mergeValues, type ValuesObject } from './values-merge.ts';

function setAll(base: ValuesObject, ...args: string[]): ValuesObject {
  const v = structuredClone(base);
  for (const a of args) applySet(v, a);
  return v;
}

function setError(base: ValuesObject, arg: string): ValuesError {
  try {
    applySet(structuredClone(base), arg);
  } catch (err) {
    if (err instanceof ValuesError) return err;
    throw err;
  }
  throw new Error(`--set ${arg} was accepted`);
}

describe('mergeValues', () => {
  it('merges mappings key by key, replaces lists and scalars, and removes a key set to null', () => {
    const base = { a: { b: 1, c: [1, 2], d: { e: 'x' } }, f: 'keep', g: 'drop' };
    const over = { a: { b: 2, c: [3], d: { z: true } }, g: null };
    expect(mergeValues(base, over)).toEqual({ a: { b: 2, c: [3], d: { e: 'x', z: true } }, f: 'keep' });
    // Neither input is changed.
    expect(base.a.c).toEqual([1, 2]);
    expect(over.a.c).toEqual([3]);
  });

  it('lets a mapping replace a scalar and a scalar replace a mapping', () => {
    expect(mergeValues({ a: 1 }, { a: { b: 1 } })).toEqual({ a: { b: 1 } });
    expect(mergeValues({ a: { b: 1 } }, { a: 'x' })).toEqual({ a: 'x' });
  });
});

describe('applySet', () => {
  const base: ValuesObject = { worker: { gpu: { replicas: 1, tolerations: [{ key: 'a' }] } }, name: 'g' };

  it('types true/false/null/numbers/[]/{} and keeps other text as it is', () => {
    const v = setAll(
      base,
      'worker.gpu.replicas=3',
      'worker.gpu.enabled=false',
      'a.ratio=-0.25',
      'a.list=[]',
      'a.map={}',
      'a.text=01',
      'name=null',
    );
    expect(v.worker).toEqual({ gpu: { replicas: 3, enabled: false, tolerations: [{ key: 'a' }] } });
    // 01 is not a number (leading zero): it stays text, as image tags and ids need.
    expect(v.a).toEqual({ ratio: -0.25, list: [], map: {}, text: '01' });
    expect('name' in v).toBe(false);
  });

  it('takes the value whole: commas, braces and = are literal (a cluster URL list, a hash-tag prefix)', () => {
    const v = setAll(base, 'gantry.prefix={gantry}', 'redis.external.url=redis://a:1,redis://b:2', 'x.y=a=b');
    expect(v.gantry).toEqual({ prefix: '{gantry}' });
    expect((v.redis as ValuesObject).external).toEqual({ url: 'redis://a:1,redis://b:2' });
    expect(v.x).toEqual({ y: 'a=b' });
  });

  it('keeps the text with --set-string', () => {
    const v = structuredClone(base);
    applySet(v, 'images.gantry.tag=1.10', true);
    applySet(v, 'flag=true', true);
    expect(v.images).toEqual({ gantry: { tag: '1.10' } });
    expect(v.flag).toBe('true');
  });

  it('reads \\. as a dot inside a key (label keys) and [n] as a list index', () => {
    const v = setAll(
      base,
      'worker.gpu.nodeSelector.nvidia\\.com/gpu\\.present=yes',
      'worker.gpu.tolerations[0].effect=NoSchedule',
      'worker.gpu.tolerations[1].key=b',
    );
    const gpu = (v.worker as ValuesObject).gpu as ValuesObject;
    expect(gpu.nodeSelector).toEqual({ 'nvidia.com/gpu.present': 'yes' });
    expect(gpu.tolerations).toEqual([{ key: 'a', effect: 'NoSchedule' }, { key: 'b' }]);
  });

  it('replaces a whole mapping or list at the path (no merge)', () => {
    const v = setAll(base, 'worker.gpu.tolerations=[]', 'worker={}');
    expect(v.worker).toEqual({});
  });

  it('refuses what is not path=value, indexes past a list end, and paths through scalars, naming the argument', () => {
    for (const [arg, message] of [
      ['replicas', 'expected path=value'],
      ['=3', 'expected path=value'],
      ['a..b=1', 'empty key in the path'],
      ['worker.gpu.tolerations[x]=1', 'a list index is [<n>], n a whole number'],
      ['worker.gpu.tolerations[3].key=c', 'worker.gpu.tolerations has 1 items: index 3 is past its end'],
      ['name.first=x', 'name is not a mapping'],
      ['worker[0]=x', 'worker is not a list'],
    ] as const) {
      const err = setError(base, arg);
      expect(err.code).toBe('INVALID_VALUES');
      expect(err.issues).toEqual([{ path: `--set ${arg}`, message }]);
    }
  });
});
