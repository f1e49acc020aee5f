/**
 * Entry of the inference child process, started by the coordinator (its inference pool): runs trials'
 * generators on request, one at a time, so that tfjs never runs on the coordinator's event loop and a
 * crash or hang here costs one request. Talks to its parent only over IPC (InferParentMessage and
 * InferChildMessage in shared), with advanced serialization so that images cross as bytes.
 */
import {
  datasetKeys,
  datasetManifestSchema,
  GantryError,
  type InferChildMessage,
  type InferExportMessage,
  type InferInitMessage,
  type InferParentMessage,
  type InferRunMessage,
  type InferShapesMessage,
  ObjectStore,
  parseExportRequest,
  parseInferRequest,
  toWireError,
} from '@gantry/shared';
import { initBackend } from './backend.ts';
import { CheckpointStore } from './checkpoint-store.ts';
import { familyOf } from './families/registry.ts';
import { InferenceSession } from './inference.ts';
import { answerShapes, type ShapesDeps } from './tensor-shapes.ts';

/** Object-store reads of a request wait out a short outage only: the client is waiting. */
const STORE_RETRY = { maxElapsedMs: 10_000, maxDelayMs: 2000 };

let session: InferenceSession | undefined;
let shapesDeps: ShapesDeps | undefined;

function send(msg: InferChildMessage): Promise<void> {
  return new Promise((resolve, reject) => {
    if (!process.send) return reject(new Error('inference process started without an IPC channel'));
    process.send(msg, undefined, {}, (err) => (err ? reject(err) : resolve()));
  });
}

async function init(m: InferInitMessage): Promise<void> {
  try {
    const store = new ObjectStore(m.store, { retry: STORE_RETRY });
    const info = await initBackend(m.backend, { wasmGemm: m.wasmGemm });
    const readManifest: ShapesDeps['readManifest'] = async (d) =>
      datasetManifestSchema.parse(
        JSON.parse((await store.get(datasetKeys.manifest(d.name, d.version))).toString('utf8')),
      );
    // Where a trial becomes a generator: its family's trainer (families/), as in the trainer process.
    const createTrainer: ShapesDeps['createTrainer'] = (job, data) =>
      familyOf(job.model).createTrainer(job, data);
    session = new InferenceSession({
      readCheckpoint: (job, key) => new CheckpointStore(store, job.sweepId, job.trialId).read(key),
      readManifest,
      createTrainer,
    });
    shapesDeps = {
      readCheckpoint: (sweepId, trialId, key) => new CheckpointStore(store, sweepId, trialId).read(key),
      readManifest,
      createTrainer,
    };
    await send({ type: 'ready', backend: info.backend, device: info.device });
  } catch (err) {
    await send({ type: 'init-failed', message: (err as Error).message }).catch(() => {});
    process.exit(1);
  }
}

async function infer(m: InferRunMessage): Promise<void> {
  try {
    if (!session) throw new Error('inference request before init');
    const result = await session.run(parseInferRequest(m.request));
    await send({ type: 'result', id: m.id, result });
  } catch (err) {
    // A request that did not suit the trial leaves the loaded trainer as it was; anything else may not.
    if (!(err instanceof GantryError)) session?.dispose();
    await send({ type: 'error', id: m.id, error: toWireError(err, 'INFERENCE_FAILED') });
  }
}

/** The networks' shapes for `init_from`'s check; the session's trainer goes first (one per process). */
async function shapes(m: InferShapesMessage): Promise<void> {
  try {
    if (!session || !shapesDeps) throw new Error('shapes request before init');
    session.dispose();
    const result = await answerShapes(m.request, shapesDeps);
    await send({ type: 'shapes', id: m.id, result });
  } catch (err) {
    await send({ type: 'error', id: m.id, error: toWireError(err, 'INFERENCE_FAILED') });
  }
}

async function exportNet(m: InferExportMessage): Promise<void> {
  try {
    if (!session) throw new Error('export request before init');
    const result = await session.export(parseExportRequest(m.request));
    await send({ type: 'exported', id: m.id, result });
  } catch (err) {
    if (!(err instanceof GantryError)) session?.dispose();
    await send({ type: 'error', id: m.id, error: toWireError(err, 'INFERENCE_FAILED') });
  }
}

// Messages are handled in order, one at a time.
let chain: Promise<void> = Promise.resolve();
process.on('message', (m: InferParentMessage) => {
  chain = chain.then(() => {
    if (m.type === 'init') return init(m);
    if (m.type === 'shapes') return shapes(m);
    if (m.type === 'export') return exportNet(m);
    return infer(m);
  });
});
// The coordinator went away (or closed the channel): nothing left to answer.
process.on('disconnect', () => process.exit(0));
