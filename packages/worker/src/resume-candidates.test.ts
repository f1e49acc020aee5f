import type { CheckpointRef, HealthDetection } from '@gantry/shared';
import { describe, expect, it } from 'vitest';
import { resumeCandidates } from './resume-candidates.ts';

const ref = (step: number, restarts = 0): CheckpointRef => ({
  step,
  restarts,
  manifestKey: `ck/${step}/r${restarts}/manifest.json`,
  worker: 'w',
  t: step,
});
const restart = (step: number, restartFrom: number): HealthDetection => ({
  detector: 'divergence',
  step,
  action: 'restart',
  reason: 'x',
  restartFrom,
  t: step,
});
const steps = (refs: CheckpointRef[]) => refs.map((r) => `${r.step}/r${r.restarts}`);

describe('resumeCandidates', () => {
  it('offers the pointer, then older checkpoints newest first, each once', () => {
    const committed = [ref(20), ref(40), ref(60), ref(40)];
    expect(steps(resumeCandidates(ref(60), committed, undefined))).toEqual(['60/r0', '40/r0', '20/r0']);
    expect(resumeCandidates(undefined, committed, undefined)).toEqual([]);
  });

  it('never offers checkpoints newer than the pointer or before the stage began', () => {
    const committed = [ref(20), ref(40), ref(60), ref(80)];
    expect(steps(resumeCandidates(ref(60), committed, undefined, 40))).toEqual(['60/r0', '40/r0']);
  });

  it("skips the abandoned run's checkpoints after a health restart", () => {
    // Restart 1 at step 70 rewound to 20; training went on to 50 with restarts = 1.
    const committed = [ref(20), ref(40), ref(60), ref(30, 1), ref(50, 1)];
    const health = { restarts: 1, detections: [restart(70, 20)] };
    expect(steps(resumeCandidates(ref(50, 1), committed, health))).toEqual(['50/r1', '30/r1', '20/r0']);
    // Restart 2 at 45 rewound to 30: the r1 checkpoint at 50 is off the line too.
    const two = { restarts: 2, detections: [restart(70, 20), restart(45, 30)] };
    const more = [...committed, ref(40, 2)];
    expect(steps(resumeCandidates(ref(40, 2), more, two))).toEqual(['40/r2', '30/r1', '20/r0']);
  });
});
