/**
 * Child process of bench/gantry-trainer.ts: one Gantry trainer on wasm (one thread), driven over IPC. On
 * `setup` it reads the job's data set version from disk (as a trainer process does), builds the job's
 * trainer and takes the warm-up steps; each `repeat` times
 * the row's steps; `end` disposes it and answers with the process's peak resident set. It exits when the
 * channel closes.
 */
import { initBackend } from '../packages/worker/src/backend.ts';
import { readDatasetVersion } from '../packages/worker/src/data/datasets.ts';
import type { Trainer } from '../packages/worker/src/families/family.ts';
import { familyOf } from '../packages/worker/src/families/registry.ts';
import type { ChildReply, ChildRequest, ChildSetup } from './gantry-trainer.ts';

let trainer: Trainer | undefined;
let setup: ChildSetup | undefined;

const reply = (m: ChildReply) => process.send!(m);

/** Trainable parameters of both networks, counted from the trainer's own state. */
function parameterCount(t: Trainer): number {
  const { g, d } = t.exportState();
  return [...g, ...d].reduce((n, a) => n + a.data.length, 0);
}

async function handle(req: ChildRequest): Promise<void> {
  switch (req.type) {
    case 'setup': {
      setup = req;
      const info = await initBackend('wasm');
      const data = await readDatasetVersion(req.dataDir, 'train', req.job.dataset);
      trainer = familyOf(req.job.model).createTrainer(req.job, data);
      for (let i = 0; i < req.warmup; i++) trainer.trainStep();
      reply({
        type: 'ready',
        ...info,
        flopsPerStep: trainer.flopsPerStep(),
        params: parameterCount(trainer),
      });
      return;
    }
    case 'repeat': {
      if (!trainer || !setup) throw new Error('repeat before setup');
      const t0 = performance.now();
      for (let i = 0; i < setup.steps; i++) trainer.trainStep();
      reply({ type: 'repeat', seconds: (performance.now() - t0) / 1000 });
      return;
    }
    case 'end': {
      trainer?.dispose();
      trainer = undefined;
      // maxRSS is in kilobytes.
      reply({ type: 'end', peakRssMb: process.resourceUsage().maxRSS / 1024 });
      return;
    }
  }
}

process.on('message', (req: ChildRequest) => {
  handle(req).catch((e: Error) => {
    reply({ type: 'error', message: e.stack ?? e.message });
    process.exitCode = 1;
  });
});
process.on('disconnect', () => process.exit());
