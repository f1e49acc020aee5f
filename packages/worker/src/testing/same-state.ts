import { expect } from 'vitest';
import type { NamedArray } from '../models/param-store.ts';

/** Expects two lists of named arrays (weights, statistics) to be equal name by name and value by value. */
export function expectSameArrays(actual: readonly NamedArray[], expected: readonly NamedArray[]): void {
  expect(actual.map((a) => a.name)).toEqual(expected.map((a) => a.name));
  actual.forEach((a, i) => {
    expect(Array.from(a.data), a.name).toEqual(Array.from(expected[i]!.data));
  });
}
