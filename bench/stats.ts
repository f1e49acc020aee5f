/** Summaries the bench prints. */

/** The median of `xs`. */
export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
/** `xs` as a bracketed list with `digits` decimals. */
export const list = (xs: number[], digits = 1) => `[${xs.map((x) => x.toFixed(digits)).join(', ')}]`;
