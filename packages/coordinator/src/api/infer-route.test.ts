import {
  BadRequestError,
  type CheckpointRef,
  ConflictError,
  INFER_LIMITS,
  InferenceError,
  NotFoundError,
} from '@gantry/shared';
import * as jpegJs from 'jpeg-js';
import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';
import { inferInput, parseInferQuery, pickCheckpoint } from './infer-route.ts';

function png(width: number, height: number, rgba: [number, number, number, number]): Buffer {
  const p = new PNG({ width, height });
  for (let i = 0; i < width * height; i++) p.data.set(rgba, i * 4);
  return PNG.sync.write(p);
}

function thrown(f: () => unknown): Error {
  try {
    f();
  } catch (err) {
    return err as Error;
  }
  throw new Error('did not throw');
}

describe('parseInferQuery', () => {
  it('reads step, count, class and seed as whole numbers', () => {
    expect(parseInferQuery({})).toEqual({});
    expect(parseInferQuery({ step: '40', count: '9', class: '3', seed: '4294967295' })).toEqual({
      step: 40,
      count: 9,
      label: 3,
      seed: 4294967295,
    });
  });

  it.each([
    ['count', '0'],
    ['count', String(INFER_LIMITS.maxCount + 1)],
    ['count', '2.5'],
    ['step', '-1'],
    ['step', 'latest'],
    ['seed', '4294967296'],
    ['class', ''],
    ['count', ['1', '2']],
  ])('refuses %s=%j with 400 naming it', (name, value) => {
    const err = thrown(() => parseInferQuery({ [name]: value }));
    expect(err).toBeInstanceOf(BadRequestError);
    expect((err as BadRequestError).issues[0]!.path).toBe(name);
  });

  it('refuses parameters it does not take, __proto__ included', () => {
    const err = thrown(() => parseInferQuery({ steps: '10' }));
    expect(err).toBeInstanceOf(BadRequestError);
    expect(err.message).toBe('steps: unknown parameter; infer takes step, count, class, seed');
    expect(thrown(() => parseInferQuery(JSON.parse('{"__proto__": "1"}')))).toBeInstanceOf(BadRequestError);
  });
});

describe('pickCheckpoint', () => {
  const ref = (step: number, restarts = 0, writer = 'w'): CheckpointRef => ({
    step,
    manifestKey: `s/checkpoints/${step}/${writer}${restarts ? `-r${restarts}` : ''}/manifest.json`,
    worker: 'w',
    t: 0,
    restarts,
  });
  const trial = { id: 'sw-t000', state: 'running' as const, step: 35 };

  it("takes the trial's checkpoint pointer by default, the newest commit of a step when one is asked for", () => {
    const refs = [ref(10), ref(20), ref(30), ref(20, 1)];
    expect(pickCheckpoint({ ...trial, latestCheckpoint: refs[3] }, refs)).toBe(refs[3]);
    expect(pickCheckpoint(trial, refs)).toBe(refs[3]);
    expect(pickCheckpoint(trial, refs, 20)).toBe(refs[3]);
    expect(pickCheckpoint(trial, refs, 10)).toBe(refs[0]);
  });

  it('answers 404 listing the steps that have checkpoints, and 409 when there is none yet', () => {
    const missing = thrown(() => pickCheckpoint(trial, [ref(20), ref(10), ref(20, 1)], 15));
    expect(missing).toBeInstanceOf(NotFoundError);
    expect(missing.message).toBe("checkpoint 'sw-t000 at step 15' not found: steps with checkpoints: 10, 20");
    const none = thrown(() => pickCheckpoint(trial, [], undefined, 100));
    expect(none).toBeInstanceOf(ConflictError);
    expect(none.message).toBe(
      'trial sw-t000 has no committed checkpoint yet (running, step 35; it checkpoints every 100 steps)',
    );
  });
});

describe('inferInput', () => {
  it('is nothing for no body or an empty one', () => {
    expect(inferInput(undefined)).toBeUndefined();
    expect(inferInput(Buffer.alloc(0))).toBeUndefined();
  });

  it('decodes a PNG or JPEG to RGBA, saying whether it is gray and has alpha', () => {
    expect(inferInput(png(3, 2, [10, 10, 10, 128]))).toMatchObject({
      width: 3,
      height: 2,
      gray: true,
      hasAlpha: true,
    });
    const data = Buffer.alloc(8 * 8 * 4, 255);
    const jpeg = jpegJs.encode({ width: 8, height: 8, data }, 90).data;
    const img = inferInput(Buffer.from(jpeg))!;
    expect([img.width, img.height, img.rgba?.length]).toEqual([8, 8, 256]);
  });

  it('passes an image over the decoding bound on by its size alone', () => {
    const big = png(600, 600, [0, 0, 0, 255]);
    expect(inferInput(big)).toEqual({ width: 600, height: 600, gray: false, hasAlpha: false });
  });

  it('refuses what is not a PNG or JPEG, a corrupt one, and a body sent as text, with 400 INVALID_IMAGE', () => {
    for (const body of [Buffer.from('hello'), png(4, 4, [1, 2, 3, 255]).subarray(0, 40), 'text', { a: 1 }]) {
      const err = thrown(() => inferInput(body));
      expect(err).toBeInstanceOf(InferenceError);
      expect((err as InferenceError).code).toBe('INVALID_IMAGE');
      expect((err as InferenceError).status).toBe(400);
    }
    expect(thrown(() => inferInput(Buffer.from('hello'))).message).toBe('body: not a PNG or JPEG image');
  });
});
