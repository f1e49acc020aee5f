/** A photo's pixels brighter than this (of 255) are garment; the rest is background. */
export const RENDER_MASK_THRESHOLD = 20;
/** A silhouette pixel whose Sobel gradient magnitude in the photo exceeds this is an internal edge. */
export const RENDER_EDGE_THRESHOLD = 400;
/** Lines (outline and internal edges) are drawn at this fraction of the flat fill level. */
export const RENDER_LINE_FACTOR = 0.5;

/**
 * The flat "render" of a Fashion-MNIST photo (`side` x `side` gray bytes, background 0, garment bright):
 * the A side of a synthetic-render -> real-photo pair, on the photo's black background.
 *
 * 1. Mask: photo > {@link RENDER_MASK_THRESHOLD} (20).
 * 2. Clean-up, both read from the mask of step 1: a mask pixel none of whose 8 neighbours is in the mask
 *    (a speck) is dropped; a background pixel whose 4 neighbours are all in the mask (a pinhole, usually a
 *    dark print) is added. The result is the silhouette.
 * 3. Fill: every silhouette pixel gets one level, round(mean of the photo over the silhouette).
 * 4. Lines, at round(fill * {@link RENDER_LINE_FACTOR}) (never 0, so the silhouette is exactly A > 0):
 *    the outline (silhouette pixels with a 4-neighbour outside it or on the image's border), and the
 *    internal edges (other silhouette pixels whose 3x3 Sobel magnitude in the photo, up to 1020 for a
 *    0 -> 255 step, exceeds {@link RENDER_EDGE_THRESHOLD}, 400: 12% of the interior pixels of the first
 *    14,000 Fashion-MNIST images, about 31 per image beside about 94 of outline). An empty silhouette
 *    renders all 0.
 *
 * Why this render: the synthetic-to-real case keeps what a cheap renderer knows (shape, overall brightness,
 * seams and folds as toon lines) and drops what it does not (texture, shading, prints), so G must learn
 * exactly the realistic part. The one flat level is the photo's own mean over the garment, so G need not
 * guess a brightness the render lacks; lines darker than the fill but above 0 keep the outline visible on
 * black without changing the silhouette. Thresholds are round numbers checked by eye on sample grids, not
 * tuned; the clean-up only touches single pixels, so any shape of 2+ pixels keeps its outline.
 */
export function renderFashion(photo: Uint8Array, side = 28): Uint8Array {
  if (photo.length !== side * side)
    throw new RangeError(
      `renderFashion: expected ${side}x${side} = ${side * side} bytes, got ${photo.length}`,
    );
  const inside = (m: Uint8Array, y: number, x: number) =>
    y >= 0 && y < side && x >= 0 && x < side && m[y * side + x] === 1;
  const mask = photo.map((v) => (v > RENDER_MASK_THRESHOLD ? 1 : 0));
  const silhouette = new Uint8Array(side * side);
  let sum = 0;
  let count = 0;
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      const keep =
        mask[y * side + x] === 1 ? hasNeighbour8(mask, y, x, inside) : fourNeighbours(mask, y, x, inside);
      if (!keep) continue;
      silhouette[y * side + x] = 1;
      sum += photo[y * side + x]!;
      count++;
    }
  }
  const out = new Uint8Array(side * side);
  if (count === 0) return out;
  const fill = Math.round(sum / count);
  const line = Math.round(fill * RENDER_LINE_FACTOR);
  const v = (y: number, x: number) => photo[y * side + x]!;
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      if (silhouette[y * side + x] !== 1) continue;
      if (!fourNeighbours(silhouette, y, x, inside)) {
        out[y * side + x] = line;
        continue;
      }
      // Interior pixels are at least one pixel from the image's border, so the 3x3 window stays inside it.
      const gx =
        v(y - 1, x + 1) +
        2 * v(y, x + 1) +
        v(y + 1, x + 1) -
        v(y - 1, x - 1) -
        2 * v(y, x - 1) -
        v(y + 1, x - 1);
      const gy =
        v(y + 1, x - 1) +
        2 * v(y + 1, x) +
        v(y + 1, x + 1) -
        v(y - 1, x - 1) -
        2 * v(y - 1, x) -
        v(y - 1, x + 1);
      out[y * side + x] = gx * gx + gy * gy > RENDER_EDGE_THRESHOLD ** 2 ? line : fill;
    }
  }
  return out;
}

type Inside = (m: Uint8Array, y: number, x: number) => boolean;

function hasNeighbour8(m: Uint8Array, y: number, x: number, inside: Inside): boolean {
  for (let dy = -1; dy <= 1; dy++)
    for (let dx = -1; dx <= 1; dx++) if ((dy !== 0 || dx !== 0) && inside(m, y + dy, x + dx)) return true;
  return false;
}

function fourNeighbours(m: Uint8Array, y: number, x: number, inside: Inside): boolean {
  return inside(m, y - 1, x) && inside(m, y + 1, x) && inside(m, y, x - 1) && inside(m, y, x + 1);
}
