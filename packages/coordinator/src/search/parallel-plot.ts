import { ConflictError, type ParameterSpec } from '@gantry/shared';
import { PNG } from 'pngjs';
import { drawText, type Rgb, type RgbaImage, setPixel, textWidth } from './bitmap-font.ts';

/** What a parallel-coordinates plot of a sweep shows. */
export interface ParallelPlotInput {
  metric: { name: string; goal: 'minimize' | 'maximize' };
  /** One axis per searched parameter (not a constant `value`), in name order; log_uniform ones on a log scale. */
  space: Readonly<Record<string, ParameterSpec>>;
  /** Trials with a value: a completed trial's result, or a stopped trial's last evaluation (`stopped`). */
  trials: readonly {
    id: string;
    params: Readonly<Record<string, number>>;
    value: number;
    stopped?: boolean;
  }[];
  /** Image height in pixels. @default 420 */
  height?: number;
}

/** One vertical axis: where it is drawn and the value range it spans from `bottom` up to `top`. */
export interface PlotAxis {
  name: string;
  /** The label drawn above it (`lr_g (log)` for a log axis). */
  label: string;
  x: number;
  top: number;
  bottom: number;
  /** The values at the axis's bottom and top end (the metric's axis has the best value on top). */
  atBottom: number;
  atTop: number;
  log: boolean;
}

export interface PlotLayout {
  width: number;
  height: number;
  axes: PlotAxis[];
  legend: string;
  /** The best and worst value among the trials: the two ends of the colour ramp. */
  best: number;
  worst: number;
}

const SCALE = 2;
const PAD = 24;
const LEGEND_Y = 12;
const NAME_Y = 44;
const AXIS_TOP = 90;
const TICK = 5;
export const BACKGROUND: Rgb = [255, 255, 255];
const INK: Rgb = [40, 40, 40];
const AXIS: Rgb = [90, 90, 90];
/** Best to worst: blue, green, orange, red. */
const RAMP: readonly Rgb[] = [
  [33, 102, 172],
  [26, 152, 80],
  [230, 145, 0],
  [200, 30, 45],
];

/** Colour of a trial at `t` from best (0) to worst (1) along the ramp, linear between its stops. */
export function rampColor(t: number): Rgb {
  const u = Math.min(1, Math.max(0, t)) * (RAMP.length - 1);
  const k = Math.min(RAMP.length - 2, Math.floor(u));
  const f = u - k;
  const a = RAMP[k]!;
  const b = RAMP[k + 1]!;
  const mix = (c: 0 | 1 | 2) => Math.round(a[c] + (b[c] - a[c]) * f);
  return [mix(0), mix(1), mix(2)];
}

/** A stopped trial's colour: its ramp colour 55 % of the way to the background. */
export function dimmed(c: Rgb): Rgb {
  const mix = (i: 0 | 1 | 2) => Math.round(c[i] + (BACKGROUND[i] - c[i]) * 0.55);
  return [mix(0), mix(1), mix(2)];
}

/** Tick labels: whole numbers as they are, very small or large ones as `2.0e-4`, others to 3 digits. */
export function tickText(v: number): string {
  if (Number.isInteger(v) && Math.abs(v) < 1e5) return String(v);
  if (v !== 0 && (Math.abs(v) < 1e-2 || Math.abs(v) >= 1e4)) return v.toExponential(1);
  return String(Number(v.toPrecision(3)));
}

/** The range an axis spans: the spec's bounds widened to the trials' values, never empty. */
function paramRange(p: ParameterSpec, xs: number[], log: boolean): [number, number] {
  const bounds = p.kind === 'distribution' ? [p.min, p.max] : p.kind === 'values' ? p.values : [p.value];
  let lo = Math.min(...bounds, ...xs);
  let hi = Math.max(...bounds, ...xs);
  if (lo === hi) [lo, hi] = log ? [lo / 2, hi * 2] : [lo - 0.5, hi + 0.5];
  return [lo, hi];
}

/**
 * Where everything goes: axes `spacing` apart (wide enough for the widest label), the parameters' axes in
 * name order and the metric's last, with the best value on top; the legend line above them.
 * @throws ConflictError when no trial has a value
 */
export function plotLayout(input: ParallelPlotInput): PlotLayout {
  const { metric, trials } = input;
  if (trials.length === 0)
    throw new ConflictError(`no trial has a value of ${metric.name} yet: nothing to plot`, {
      metric: metric.name,
    });
  const height = input.height ?? 420;
  const bottom = height - 46;
  const names = Object.keys(input.space)
    .filter((n) => input.space[n]!.kind !== 'value')
    .sort();
  const axes: Omit<PlotAxis, 'x'>[] = names.map((name) => {
    const p = input.space[name]!;
    const xs = trials.map((t) => t.params[name]).filter((x): x is number => Number.isFinite(x));
    const log = p.kind === 'distribution' && p.distribution === 'log_uniform' && Math.min(...xs, p.min) > 0;
    const [lo, hi] = paramRange(p, xs, log);
    return { name, label: log ? `${name} (log)` : name, top: AXIS_TOP, bottom, atBottom: lo, atTop: hi, log };
  });
  const values = trials.map((t) => t.value);
  const sign = metric.goal === 'minimize' ? 1 : -1;
  const best = sign > 0 ? Math.min(...values) : Math.max(...values);
  const worst = sign > 0 ? Math.max(...values) : Math.min(...values);
  const pad = best === worst ? 0.5 : 0;
  axes.push({
    name: metric.name,
    label: metric.name,
    top: AXIS_TOP,
    bottom,
    atTop: best - sign * pad,
    atBottom: worst + sign * pad,
    log: false,
  });
  const widest = Math.max(
    ...axes.flatMap((a) =>
      [a.label, tickText(a.atTop), tickText(a.atBottom)].map((s) => textWidth(s, SCALE)),
    ),
  );
  const spacing = Math.max(150, widest + 24);
  const legend = `${metric.name}: best ${tickText(best)} .. worst ${tickText(worst)}`;
  const legendWidth =
    textWidth(legend, SCALE) +
    12 +
    120 +
    (trials.some((t) => t.stopped) ? 12 + textWidth('dim: stopped', SCALE) : 0);
  const x0 = PAD + spacing / 2;
  const width = Math.max(Math.round(2 * x0 + (axes.length - 1) * spacing), legendWidth + 2 * PAD);
  return {
    width,
    height,
    axes: axes.map((a, i) => ({ ...a, x: Math.round(x0 + i * spacing) })),
    legend,
    best,
    worst,
  };
}

/** The pixel row of `v` on axis `a` (clamped to its ends). */
function yOn(a: PlotAxis, v: number): number {
  const f = a.log
    ? (Math.log(v) - Math.log(a.atBottom)) / (Math.log(a.atTop) - Math.log(a.atBottom))
    : (v - a.atBottom) / (a.atTop - a.atBottom);
  return a.bottom - Math.min(1, Math.max(0, Number.isFinite(f) ? f : 0)) * (a.bottom - a.top);
}

/** A line 3 px wide from (x0, y0) to (x1, y1): 3 x 3 squares stamped every half pixel along it. */
function drawLine(img: RgbaImage, x0: number, y0: number, x1: number, y1: number, color: Rgb): void {
  const n = Math.max(1, Math.ceil(Math.hypot(x1 - x0, y1 - y0) * 2));
  for (let k = 0; k <= n; k++) {
    const cx = Math.round(x0 + ((x1 - x0) * k) / n);
    const cy = Math.round(y0 + ((y1 - y0) * k) / n);
    for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) setPixel(img, cx + dx, cy + dy, color);
  }
}

function fillRect(img: RgbaImage, x: number, y: number, w: number, h: number, color: Rgb): void {
  for (let dy = 0; dy < h; dy++) for (let dx = 0; dx < w; dx++) setPixel(img, x + dx, y + dy, color);
}

/**
 * A parallel-coordinates plot of a sweep as PNG bytes: one vertical axis per searched parameter and the
 * metric's last, each named above and with its end values as ticks; one polyline per trial, coloured by its
 * value from the best (blue) to the worst (red), a stopped trial's dimmer; drawn stopped first, then worst
 * to best, so the best trial's line is on top. Pixels are opaque colours (no anti-aliasing).
 * @throws ConflictError when no trial has a value
 */
export function renderParallelPlot(input: ParallelPlotInput): Buffer {
  const layout = plotLayout(input);
  const { width, height, axes } = layout;
  const png = new PNG({ width, height });
  for (let i = 0; i < png.data.length; i += 4) {
    png.data[i] = BACKGROUND[0];
    png.data[i + 1] = BACKGROUND[1];
    png.data[i + 2] = BACKGROUND[2];
    png.data[i + 3] = 255;
  }
  const span = layout.worst - layout.best;
  const badness = (v: number) => (span === 0 ? 0 : (v - layout.best) / span);
  const order = [...input.trials].sort(
    (a, b) => Number(b.stopped ?? false) - Number(a.stopped ?? false) || badness(b.value) - badness(a.value),
  );
  for (const t of order) {
    const c = rampColor(badness(t.value));
    const color = t.stopped ? dimmed(c) : c;
    const points = axes.map(
      (a, i) => [a.x, yOn(a, i === axes.length - 1 ? t.value : (t.params[a.name] ?? a.atBottom))] as const,
    );
    // Without a searched parameter the metric's axis is the only one: a dot on it.
    if (points.length === 1) drawLine(png, points[0]![0], points[0]![1], points[0]![0], points[0]![1], color);
    for (let i = 1; i < points.length; i++)
      drawLine(png, points[i - 1]![0], points[i - 1]![1], points[i]![0], points[i]![1], color);
  }
  for (const a of axes) {
    fillRect(png, a.x, a.top, 1, a.bottom - a.top + 1, AXIS);
    fillRect(png, a.x - TICK, a.top, 2 * TICK + 1, 1, AXIS);
    fillRect(png, a.x - TICK, a.bottom, 2 * TICK + 1, 1, AXIS);
    const label = (s: string, y: number) =>
      drawText(png, s, Math.round(a.x - textWidth(s, SCALE) / 2), y, INK, SCALE);
    label(a.label, NAME_Y);
    label(tickText(a.atTop), a.top - 20);
    label(tickText(a.atBottom), a.bottom + 8);
  }
  drawText(png, layout.legend, PAD, LEGEND_Y, INK, SCALE);
  const stripX = PAD + textWidth(layout.legend, SCALE) + 12;
  for (let dx = 0; dx < 120; dx++) fillRect(png, stripX + dx, LEGEND_Y + 2, 1, 10, rampColor(dx / 119));
  if (input.trials.some((t) => t.stopped))
    drawText(png, 'dim: stopped', stripX + 132, LEGEND_Y, dimmed(INK), SCALE);
  return PNG.sync.write(png);
}
