import { ConflictError, type ParameterSpec } from '@gantry/shared';
import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';
import { type ParallelPlotInput, plotLayout, renderParallelPlot, tickText } from './parallel-plot.ts';

const space: Record<string, ParameterSpec> = {
  x1: { kind: 'distribution', distribution: 'log_uniform', min: 1e-5, max: 1e-3 },
  x2: { kind: 'distribution', distribution: 'uniform', min: 0, max: 1 },
  c: { kind: 'value', value: 3 },
};
const A = { id: 'a', params: { x1: 1e-4, x2: 0.25, c: 3 }, value: 10 };
const B = { id: 'b', params: { x1: 1e-5, x2: 0.9, c: 3 }, value: 50 };
const C = { id: 'c', params: { x1: 1e-3, x2: 0.75, c: 3 }, value: 40, stopped: true };
const input: ParallelPlotInput = { metric: { name: 'fld', goal: 'minimize' }, space, trials: [A, B, C] };

// Hand-worked layout: 3 axes 150 px apart (the widest label, 'x1 (log)', is 8 * 12 - 2 = 94 px < 150 - 24),
// the first at 24 + 75 = 99; axes from y 90 down to 420 - 46 = 374 (284 px).
const X = [99, 249, 399];
const rowOf = (f: number) => 374 - f * 284;
// The best trial's polyline: x1 = 1e-4 is halfway up the log axis, x2 = 0.25 a quarter up, fld 10 (the best)
// on top of the metric's axis.
const A_POINTS = [
  [X[0]!, rowOf(0.5)],
  [X[1]!, rowOf(0.25)],
  [X[2]!, rowOf(1)],
] as const;
const B_POINTS = [
  [X[0]!, rowOf(0)],
  [X[1]!, rowOf(0.9)],
  [X[2]!, rowOf(0)],
] as const;
// Ramp ends by hand: best blue, worst red; C (40: 3/4 of the way to the worst) is at 2.25 of the ramp's 3
// steps, a quarter from orange (230, 145, 0) to red: (222.5 -> 223, 116.25 -> 116, 11.25 -> 11), dimmed 55 %
// towards white: 223 + 32 * 0.55 = 240.6, 116 + 139 * 0.55 = 192.45, 11 + 244 * 0.55 = 145.2.
const BLUE = [33, 102, 172];
const RED = [200, 30, 45];
const DIM_C = [241, 192, 145];
const WHITE = [255, 255, 255];
const INK = [40, 40, 40];

function decode(buf: Buffer) {
  const png = PNG.sync.read(buf);
  const at = (x: number, y: number) => {
    const i = (Math.round(y) * png.width + Math.round(x)) * 4;
    return [png.data[i]!, png.data[i + 1]!, png.data[i + 2]!];
  };
  return { png, at };
}

/** Distance from (x, y) to the nearest segment of a polyline. */
function distance(points: readonly (readonly [number, number])[], x: number, y: number): number {
  let best = Number.POSITIVE_INFINITY;
  for (let i = 1; i < points.length; i++) {
    const [x0, y0] = points[i - 1]!;
    const [x1, y1] = points[i]!;
    const t = Math.max(
      0,
      Math.min(1, ((x - x0) * (x1 - x0) + (y - y0) * (y1 - y0)) / ((x1 - x0) ** 2 + (y1 - y0) ** 2)),
    );
    best = Math.min(best, Math.hypot(x - (x0 + t * (x1 - x0)), y - (y0 + t * (y1 - y0))));
  }
  return best;
}

/** Columns with `color` in rows y0..y1 and columns x0..x1. */
function inkColumns(
  img: ReturnType<typeof decode>,
  color: number[],
  x0: number,
  x1: number,
  y0: number,
  y1: number,
) {
  const cols: number[] = [];
  for (let x = x0; x <= x1; x++)
    for (let y = y0; y <= y1; y++)
      if (img.at(x, y).every((v, i) => v === color[i])) {
        cols.push(x);
        break;
      }
  return cols;
}

describe('renderParallelPlot', () => {
  it('is a PNG as wide as its axes and legend need', () => {
    const { png } = decode(renderParallelPlot(input));
    // The legend decides: 'fld: best 10 .. worst 50' (24 chars: 286 px), 12 + 120 px of ramp, 12 px and
    // 'dim: stopped' (142 px), with 24 px either side: 620 > 2 * 99 + 2 * 150 = 498.
    expect([png.width, png.height]).toEqual([620, 420]);
    expect(plotLayout(input).axes.map((a) => [a.name, a.x, a.top, a.bottom])).toEqual([
      ['x1', 99, 90, 374],
      ['x2', 249, 90, 374],
      ['fld', 399, 90, 374],
    ]);
  });

  it("draws the best trial's polyline in the ramp's best colour through its values, on top of the others", () => {
    const img = decode(renderParallelPlot(input));
    for (let i = 1; i < 3; i++) {
      for (const f of [0.25, 0.5, 0.75]) {
        const [x0, y0] = A_POINTS[i - 1]!;
        const [x1, y1] = A_POINTS[i]!;
        expect(img.at(x0 + f * (x1 - x0), y0 + f * (y1 - y0)), `segment ${i} at ${f}`).toEqual(BLUE);
        const [bx0, by0] = B_POINTS[i - 1]!;
        const [bx1, by1] = B_POINTS[i]!;
        expect(img.at(bx0 + f * (bx1 - bx0), by0 + f * (by1 - by0)), `B segment ${i} at ${f}`).toEqual(RED);
      }
    }
    // C (stopped): x1 = 1e-3 at the top, x2 = 0.75, fld 40 a quarter up; sampled between the axes.
    expect(img.at((X[0]! + X[1]!) / 2, (rowOf(1) + rowOf(0.75)) / 2)).toEqual(DIM_C);
    expect(img.at((X[1]! + X[2]!) / 2, (rowOf(0.75) + rowOf(0.25)) / 2)).toEqual(DIM_C);
    // Every blue pixel is on A's line (3 px wide) and every red one on B's; below the lines, background.
    let blue = 0;
    for (let y = 0; y < img.png.height; y++)
      for (let x = 0; x < img.png.width; x++) {
        const c = img.at(x, y);
        if (c.every((v, i) => v === BLUE[i]) && y > 40) {
          blue++;
          expect(distance(A_POINTS, x, y), `blue at ${x},${y}`).toBeLessThan(2.5);
        }
        if (c.every((v, i) => v === RED[i]) && y > 40) expect(distance(B_POINTS, x, y)).toBeLessThan(2.5);
      }
    expect(blue).toBeGreaterThan(2 * 300);
    for (const [x, y] of [
      [174, 330],
      [324, 360],
      [520, 200],
      [60, 200],
    ])
      expect(img.at(x!, y!), `${x},${y}`).toEqual(WHITE);
  });

  it('names every axis above it and writes its end values at both ends', () => {
    const img = decode(renderParallelPlot(input));
    for (const x of X) {
      for (const [y0, y1] of [
        [44, 57],
        [70, 83],
        [382, 395],
      ])
        expect(
          inkColumns(img, INK, x - 70, x + 70, y0!, y1!).length,
          `axis ${x}, rows ${y0}`,
        ).toBeGreaterThan(0);
    }
    // 'x2' is 2 glyphs, 22 px, centred on its axis: columns 238-259 (both glyphs have ink in their outer columns).
    const cols = inkColumns(img, INK, 249 - 70, 249 + 70, 44, 57);
    expect([cols[0], cols.at(-1)]).toEqual([238, 259]);
    // Nothing written between the tick labels along an axis's middle, beside the axis line.
    expect(inkColumns(img, INK, 249 - 70, 249 - 3, 200, 210)).toEqual([]);
    // The legend line starts at the left margin.
    expect(inkColumns(img, INK, 0, 40, 12, 25)[0]).toBe(24);
  });

  it('puts the best value on top for a maximised metric too, and refuses a sweep without values', () => {
    const max = plotLayout({ ...input, metric: { name: 'class_coverage', goal: 'maximize' } });
    expect(max.axes.at(-1)).toMatchObject({ atTop: 50, atBottom: 10 });
    expect(max.legend).toBe('class_coverage: best 50 .. worst 10');
    expect(plotLayout(input).axes[0]).toMatchObject({
      label: 'x1 (log)',
      log: true,
      atBottom: 1e-5,
      atTop: 1e-3,
    });
    let err: unknown;
    try {
      renderParallelPlot({ ...input, trials: [] });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConflictError);
    expect((err as ConflictError).code).toBe('CONFLICT');
  });
});

describe('tickText', () => {
  it('writes whole numbers as they are, tiny and huge ones in e-notation, others to 3 digits', () => {
    expect([128, 0, -3].map(tickText)).toEqual(['128', '0', '-3']);
    expect([2e-4, 1e-5, 12345.6].map(tickText)).toEqual(['2.0e-4', '1.0e-5', '1.2e+4']);
    expect([0.5, 0.12345, 41.237].map(tickText)).toEqual(['0.5', '0.123', '41.2']);
  });
});
