/**
 * Pixel operations on 8-bit images, interleaved channels: channel conversion and square resizing. The
 * coordinator uses them when it packs a pushed set, the worker when a spec asks for another size or
 * channel count than the set's.
 */

/**
 * Converts `count` pixels of `from` channels (1 gray, 3 RGB, 4 RGBA) to `to` channels into a new array.
 * Alpha is composited on white when it is dropped (out = a*c + (1-a)*255); gray is the luma 0.299 R +
 * 0.587 G + 0.114 B of the composited colour, rounded once; gray to colour repeats the value; a channel
 * count kept is a copy; alpha added is opaque.
 */
export function convertChannels(pixels: Uint8Array, count: number, from: number, to: number): Uint8Array {
  if (pixels.length !== count * from)
    throw new RangeError(`expected ${count * from} bytes, got ${pixels.length}`);
  if (from === to) return pixels.slice();
  const out = new Uint8Array(count * to);
  for (let p = 0; p < count; p++) {
    let r: number;
    let g: number;
    let b: number;
    let a = 1;
    if (from === 1) {
      r = g = b = pixels[p]!;
    } else {
      r = pixels[p * from]!;
      g = pixels[p * from + 1]!;
      b = pixels[p * from + 2]!;
      if (from === 4) a = pixels[p * 4 + 3]! / 255;
    }
    if (to === 4) {
      out.set([r, g, b, Math.round(a * 255)], p * 4);
      continue;
    }
    r = a * r + (1 - a) * 255;
    g = a * g + (1 - a) * 255;
    b = a * b + (1 - a) * 255;
    if (to === 1) {
      out[p] = Math.round(0.299 * r + 0.587 * g + 0.114 * b);
    } else {
      out[p * 3] = Math.round(r);
      out[p * 3 + 1] = Math.round(g);
      out[p * 3 + 2] = Math.round(b);
    }
  }
  return out;
}

/** One source pixel's share of an output pixel along one axis. */
interface Tap {
  index: number;
  weight: number;
}

/**
 * The taps of each output pixel along an axis of `side` source pixels resized to `size`: area weights when
 * shrinking (overlaps in integer units of `1 / size` source pixels, so fractional ratios are exact),
 * bilinear with pixel centres aligned and edges clamped when enlarging.
 */
function axisTaps(side: number, size: number): Tap[][] {
  const taps: Tap[][] = [];
  for (let i = 0; i < size; i++) {
    if (size < side) {
      const lo = i * side;
      const hi = lo + side;
      const row: Tap[] = [];
      for (let j = Math.floor(lo / size); j * size < hi; j++) {
        const overlap = Math.min(hi, (j + 1) * size) - Math.max(lo, j * size);
        if (overlap > 0) row.push({ index: j, weight: overlap / side });
      }
      taps.push(row);
    } else {
      const x = Math.min(Math.max(((i + 0.5) * side) / size - 0.5, 0), side - 1);
      const x0 = Math.floor(x);
      const f = x - x0;
      taps.push([
        { index: x0, weight: 1 - f },
        { index: Math.min(x0 + 1, side - 1), weight: f },
      ]);
    }
  }
  return taps;
}

/**
 * Centre-crops interleaved `channels`-per-pixel data to a square of the shorter side (an odd excess leaves
 * the extra pixel on the right or bottom), then resizes it to `size x size` into a new array: area averaging
 * when shrinking, bilinear (pixel centres aligned, edges clamped) when enlarging. With 4 channels the colour
 * is averaged weighted by alpha (premultiplied, then un-premultiplied) so transparent pixels lend it none; an
 * output pixel that is fully transparent gets colour 0.
 */
export function resizeSquare(
  pixels: Uint8Array,
  width: number,
  height: number,
  channels: number,
  size: number,
): Uint8Array {
  for (const [name, value] of Object.entries({ width, height, channels, size })) {
    if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer`);
  }
  if (pixels.length !== width * height * channels) {
    throw new RangeError(`expected ${width * height * channels} bytes, got ${pixels.length}`);
  }
  const side = Math.min(width, height);
  const left = Math.floor((width - side) / 2);
  const top = Math.floor((height - side) / 2);
  const out = new Uint8Array(size * size * channels);
  if (side === size) {
    for (let y = 0; y < size; y++) {
      const from = ((top + y) * width + left) * channels;
      out.set(pixels.subarray(from, from + size * channels), y * size * channels);
    }
    return out;
  }
  const taps = axisTaps(side, size);
  const premultiply = channels === 4;
  const acc = new Float64Array(channels);
  for (let oy = 0; oy < size; oy++) {
    for (let ox = 0; ox < size; ox++) {
      acc.fill(0);
      for (const ty of taps[oy]!) {
        for (const tx of taps[ox]!) {
          const w = ty.weight * tx.weight;
          const at = ((top + ty.index) * width + left + tx.index) * channels;
          if (premultiply) {
            const a = pixels[at + 3]! * w;
            for (let c = 0; c < 3; c++) acc[c]! += pixels[at + c]! * a;
            acc[3]! += a;
          } else {
            for (let c = 0; c < channels; c++) acc[c]! += pixels[at + c]! * w;
          }
        }
      }
      const o = (oy * size + ox) * channels;
      if (premultiply) {
        const alpha = acc[3]!;
        for (let c = 0; c < 3; c++) out[o + c] = alpha > 0 ? Math.round(acc[c]! / alpha) : 0;
        out[o + 3] = Math.round(alpha);
      } else {
        for (let c = 0; c < channels; c++) out[o + c] = Math.round(acc[c]!);
      }
    }
  }
  return out;
}
