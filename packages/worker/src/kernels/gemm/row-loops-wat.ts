/**
 * Loops of the gemm module's per-channel passes over x [rows][c] (NHWC flattened, c % 4 = 0), shared by
 * batch-norm-wat.ts and channel-passes-wat.ts. They use the locals of {@link LOOP_LOCALS} and the params
 * $rows and $c; $j is the byte offset of the current channel vector in its row.
 */

/** The locals the loops below use. */
export const LOOP_LOCALS = '(local $i i32) (local $j i32) (local $cb i32)';

/**
 * A loop over rows and, inside, over each row's channel vectors: `body` runs per vector, then the pointers
 * in `rowPtrs` advance by a row, and `afterRow` (if any) runs.
 */
export function overRows(rowPtrs: readonly string[], body: string, afterRow = ''): string {
  return perRow(rowPtrs, overChannels(body), afterRow);
}

/**
 * A loop over rows: `row` runs once per row (it may hold several {@link overChannels} loops), then the
 * pointers in `rowPtrs` advance by a row (c floats), then `afterRow` (if any) runs.
 */
export function perRow(rowPtrs: readonly string[], row: string, afterRow = ''): string {
  return `(local.set $i (i32.const 0))
  (local.set $cb (i32.shl (local.get $c) (i32.const 2)))
  (block $rowsDone (loop $row
    (br_if $rowsDone (i32.ge_u (local.get $i) (local.get $rows)))
    ${row}
    ${rowPtrs.map((p) => `(local.set ${p} (i32.add (local.get ${p}) (local.get $cb)))`).join('\n    ')}
    ${afterRow}
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br $row)))`;
}

/** A loop over one row's channel vectors, at byte $j. */
export function overChannels(body: string): string {
  return `(local.set $cb (i32.shl (local.get $c) (i32.const 2)))
  (local.set $j (i32.const 0))
  (block $done (loop $ch
    (br_if $done (i32.ge_u (local.get $j) (local.get $cb)))
    ${body}
    (local.set $j (i32.add (local.get $j) (i32.const 16)))
    (br $ch)))`;
}

/** The address of the current channel vector of the row at pointer `p`. */
export const at = (p: string): string => `(i32.add (local.get ${p}) (local.get $j))`;

/** The current channel vector of the row at pointer `p`. */
export const load = (p: string): string => `(v128.load ${at(p)})`;

/** The sum of a vector's four lanes (left to right in pairs: (l0 + l1) + (l2 + l3)). */
export const laneSum = (v: string): string =>
  `(f32.add (f32.add (f32x4.extract_lane 0 ${v}) (f32x4.extract_lane 1 ${v}))
      (f32.add (f32x4.extract_lane 2 ${v}) (f32x4.extract_lane 3 ${v})))`;
