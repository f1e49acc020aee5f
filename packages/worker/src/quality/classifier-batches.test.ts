import { describe, expect, it } from 'vitest';
import { fakeDataset } from '../testing/fake-dataset.ts';
import { rotatedSplit, rotateQuarter } from './classifier-batches.ts';

describe('rotation prediction inputs', () => {
  it('turns a square image a quarter counter-clockwise per step, in place', () => {
    // 3x3, one channel, values 1..9 row by row:   1 2 3      3 6 9
    //                                              4 5 6  ->  2 5 8   (a quarter turn counter-clockwise)
    //                                              7 8 9      1 4 7
    const img = () => Float32Array.from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const one = img();
    rotateQuarter(one, 1, 3, 1, 1);
    expect(Array.from(one)).toEqual([0, 3, 6, 9, 2, 5, 8, 1, 4, 7]);
    const two = img();
    rotateQuarter(two, 1, 3, 1, 2);
    expect(Array.from(two)).toEqual([0, 9, 8, 7, 6, 5, 4, 3, 2, 1]);
    const back = img();
    rotateQuarter(back, 1, 3, 1, 1);
    rotateQuarter(back, 1, 3, 1, 3);
    expect(back).toEqual(img());
  });

  it('keeps channels together when it turns', () => {
    // 2x2 RGB: pixel (y, x) = [10y + x, 100, 200].
    const rgb = Float32Array.from([0, 100, 200, 1, 100, 200, 10, 100, 200, 11, 100, 200]);
    rotateQuarter(rgb, 0, 2, 3, 1);
    expect(Array.from(rgb)).toEqual([1, 100, 200, 11, 100, 200, 0, 100, 200, 10, 100, 200]);
  });

  it('labels image i of a split with the i mod 4 quarter turns it was given', () => {
    const data = fakeDataset(1, 6);
    const view = rotatedSplit(data);
    expect(Array.from(view.labels)).toEqual([0, 1, 2, 3, 0, 1]);
    expect(view.numClasses).toBe(4);
    expect(view.images.subarray(0, 784)).toEqual(data.images.subarray(0, 784));
    const turned = data.images.slice(784, 2 * 784);
    rotateQuarter(turned, 0, 28, 1, 1);
    expect(view.images.subarray(784, 2 * 784)).toEqual(turned);
  });
});
