import { NotFoundError } from '@gantry/shared';
import type { FastifyInstance } from 'fastify';
import { type ParameterImportance, parameterImportance } from '../search/importance.ts';
import { renderParallelPlot } from '../search/parallel-plot.ts';
import { searchedSpace, trialValue } from '../search/views.ts';
import type { StoredSweep, SweepStore } from '../sweep-store.ts';
import { checkId } from './params.ts';

export const IMPORTANCE_ROUTE = '/v1/sweeps/:id/importance';
export const PARALLEL_PLOT_ROUTE = '/v1/sweeps/:id/parallel.png';

export interface SearchRouteDeps {
  store: SweepStore;
}

/** What `GET /v1/sweeps/:id/importance` answers. */
export interface ImportanceAnswer {
  sweepId: string;
  metric: StoredSweep['spec']['metric'];
  /** eta^2 of each parameter's equal-count bins over the metric's ranks (importance.ts). */
  method: 'eta2-bins';
  /** Completed trials with a result: the ones the estimate is over. */
  trials: number;
  params: ParameterImportance[];
}

async function sweepAndTrials(store: SweepStore, id: string) {
  const sweep = await store.get(checkId('id', id));
  if (!sweep) throw new NotFoundError('sweep', id);
  return { sweep, trials: await store.trials(sweep.trialIds) };
}

/**
 * `GET /v1/sweeps/:id/importance`: parameter importance over the sweep's completed trials (409 before 4
 * have results), and `GET /v1/sweeps/:id/parallel.png`: its parallel-coordinates plot over every trial with
 * a value, stopped ones dimmed (409 before any has one).
 */
export function registerSearchRoutes(app: FastifyInstance, deps: SearchRouteDeps): void {
  app.get<{ Params: { id: string } }>(IMPORTANCE_ROUTE, async (req): Promise<ImportanceAnswer> => {
    const { sweep, trials } = await sweepAndTrials(deps.store, req.params.id);
    const done = trials.flatMap((t) =>
      t.state === 'completed' && t.result !== undefined ? [{ params: t.params, value: t.result }] : [],
    );
    const params = parameterImportance(searchedSpace(sweep.spec, trials), done);
    return { sweepId: sweep.id, metric: sweep.spec.metric, method: 'eta2-bins', trials: done.length, params };
  });

  app.get<{ Params: { id: string } }>(PARALLEL_PLOT_ROUTE, async (req, reply) => {
    const { sweep, trials } = await sweepAndTrials(deps.store, req.params.id);
    const plotted = trials.flatMap((t) => {
      const v = trialValue(sweep.spec.metric.name, t);
      return v ? [{ id: t.id, params: t.params, ...v }] : [];
    });
    const png = renderParallelPlot({
      metric: sweep.spec.metric,
      space: searchedSpace(sweep.spec, trials),
      trials: plotted,
    });
    return reply.header('content-type', 'image/png').send(png);
  });
}
