import { BadRequestError, EXPORT_NETS, type ExportNet } from '@gantry/shared';
import type { FastifyInstance } from 'fastify';
import type { Inference } from '../inference/inference-pool.ts';
import type { SweepStore } from '../sweep-store.ts';
import { jobOf, pickCheckpoint, trialAndSweep } from './infer-route.ts';
import { checkId } from './params.ts';

export const EXPORT_ROUTE = '/v1/trials/:id/export';

/** An export's query: which checkpoint (the latest by default) and which network (G by default). */
export interface ExportQuery {
  step?: number;
  net: ExportNet;
}

/**
 * The query of `POST /v1/trials/:id/export`: `step` a whole number, `net` g or d.
 * @throws BadRequestError naming the parameter (an unknown one too)
 */
export function parseExportQuery(query: Record<string, unknown>): ExportQuery {
  const out: ExportQuery = { net: 'g' };
  for (const [name, raw] of Object.entries(query)) {
    if (name === 'step') {
      const n = typeof raw === 'string' && /^\d{1,10}$/.test(raw) ? Number(raw) : Number.NaN;
      if (!(n <= 1e9))
        throw new BadRequestError(
          name,
          `must be a whole number from 0 to 1000000000, got ${JSON.stringify(raw)}`,
        );
      out.step = n;
    } else if (name === 'net') {
      if (!EXPORT_NETS.includes(raw as ExportNet))
        throw new BadRequestError(
          name,
          `must be g (the generator) or d (the discriminator), got ${JSON.stringify(raw)}`,
        );
      out.net = raw as ExportNet;
    } else throw new BadRequestError(name, 'unknown parameter; export takes step, net');
  }
  return out;
}

export interface ExportRouteDeps {
  store: SweepStore;
  inference: Inference;
}

/**
 * `POST /v1/trials/:id/export[?step=&net=g|d]`: the trial's generator (or discriminator) of a committed
 * checkpoint as a TF.js graph model, written by an inference process. Answers JSON
 * `{trialId, step, net, files: [{name, base64}]}`: model.json, weights.bin, example.json,
 * gantry-export.json and README.md, which `gantry export` writes to a folder.
 */
export function registerExportRoute(app: FastifyInstance, deps: ExportRouteDeps): void {
  app.post<{ Params: { id: string }; Querystring: Record<string, unknown> }>(EXPORT_ROUTE, async (req) => {
    const id = checkId('id', req.params.id);
    const { step, net } = parseExportQuery(req.query);
    const { trial, sweep } = await trialAndSweep(deps.store, id);
    const ref = pickCheckpoint(
      trial,
      await deps.store.checkpoints(id),
      step,
      sweep.spec.checkpoint.every_steps,
    );
    const result = await deps.inference.export({
      job: jobOf(sweep, trial),
      ...(sweep.spec.stages ? { stages: sweep.spec.stages } : {}),
      checkpoint: { step: ref.step, manifestKey: ref.manifestKey },
      net,
    });
    return {
      trialId: id,
      step: result.step,
      net: result.net,
      files: result.files.map((f) => ({
        name: f.name,
        base64: Buffer.from(f.bytes.buffer, f.bytes.byteOffset, f.bytes.byteLength).toString('base64'),
      })),
    };
  });
}
