/**
 * A switch for Gantry's fused kernels that stand in for chains of tfjs ops in a network's forward pass
 * (batch norm, layer norm, GELU): off inside `withoutFusedKernels`, where the networks take the stock ops
 * instead - as the exporter needs, which writes each traced kernel as its TensorFlow op (export/trace.ts).
 */
let offDepth = 0;

/** Runs `fn` with the fused kernels off (the stock tfjs ops: same values to float rounding). */
export function withoutFusedKernels<T>(fn: () => T): T {
  offDepth += 1;
  try {
    return fn();
  } finally {
    offDepth -= 1;
  }
}

/** Whether a network may run a fused kernel now. */
export const fusedKernelsOn = (): boolean => offDepth === 0;
