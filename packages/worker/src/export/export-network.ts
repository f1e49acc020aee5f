import { InferenceError, Rng } from '@gantry/shared';
import * as tf from '@tensorflow/tfjs-core';
import type { ExportableNetwork, NetName, Trainer } from '../families/family.ts';
import { buildGraphModel, type GraphModelFiles } from './graph-model.ts';
import { traceForward } from './trace.ts';

/** Who the exported network is: written into its metadata and README. */
export interface ExportIdentity {
  model: string;
  sweepId: string;
  trialId: string;
  step: number;
  /** Staged trials: the stage the checkpoint is of. */
  stage?: number;
}

/** One file of an export, by its name in the export's folder. */
export interface ExportFile {
  name: string;
  bytes: Uint8Array;
}

/** Batch sizes the network is traced at: two, so that what depends on the batch is told apart. */
const TRACE_BATCHES: [number, number] = [2, 3];
/** Largest difference between the loaded model's output and the trainer's own, checked before answering. */
const SELF_CHECK_TOLERANCE = 1e-4;
/** Example outputs are kept to about this many floats (a 64-image grid at 28x28, fewer at 64x64 RGB). */
const EXAMPLE_FLOATS = 2 ** 16;

export const EXPORT_FILES = {
  model: 'model.json',
  weights: 'weights.bin',
  example: 'example.json',
  metadata: 'gantry-export.json',
  readme: 'README.md',
} as const;

/**
 * `gantry export`: the trainer's generator or discriminator as a TF.js graph model that stock
 * `@tensorflow/tfjs` loads (`tf.loadGraphModel`) with no Gantry code, plus `example.json` (inputs and the
 * trainer's own outputs for them, to check a loaded copy by), `gantry-export.json` (what the inputs are)
 * and a README. The network is traced (trace.ts) at two batch sizes and written as a TensorFlow graph
 * (graph-model.ts); before answering, the model is loaded back through tfjs-converter and run on the
 * example inputs, at a third batch size, against the trainer's outputs.
 * @throws InferenceError NOT_EXPORTABLE when the family has no exportable network, the trace has ops
 * with no TensorFlow form, or the loaded copy disagrees with the trainer
 */
export async function exportNetwork(
  trainer: Trainer,
  net: NetName,
  who: ExportIdentity,
): Promise<ExportFile[]> {
  const network = trainer.network?.(net);
  if (!network)
    throw new InferenceError('NOT_EXPORTABLE', `the ${who.model} trainer has no exportable networks`);
  const files = graphModelOf(network);
  const perExample = network.output.shape.reduce((a, b) => a * b, 1);
  const count = Math.max(4, Math.min(64, Math.floor(EXAMPLE_FLOATS / perExample)));
  const example = network.example(count);
  await selfCheck(files, network, example, count);
  const metadata = {
    ...who,
    net,
    format: 'tfjs graph-model',
    inputs: network.inputs.map((i) => ({ ...i, shape: [-1, ...i.shape] })),
    output: { ...network.output, shape: [-1, ...network.output.shape] },
    notes: network.notes,
  };
  files.modelJson.userDefinedMetadata = { gantry: metadata };
  const json = (v: unknown) => new TextEncoder().encode(`${JSON.stringify(v)}\n`);
  return [
    { name: EXPORT_FILES.model, bytes: json(files.modelJson) },
    { name: EXPORT_FILES.weights, bytes: files.weights },
    {
      name: EXPORT_FILES.example,
      bytes: json({
        count,
        inputs: Object.fromEntries(
          network.inputs.map((t, i) => [
            t.name,
            { shape: [count, ...t.shape], data: Array.from(example.inputs[i]!) },
          ]),
        ),
        output: {
          name: network.output.name,
          shape: [count, ...network.output.shape],
          data: Array.from(example.output),
        },
      }),
    },
    { name: EXPORT_FILES.metadata, bytes: json(metadata) },
    { name: EXPORT_FILES.readme, bytes: new TextEncoder().encode(readme(metadata, network)) },
  ];
}

/** The network traced at the two batch sizes and written as a graph model. */
export function graphModelOf(network: ExportableNetwork): GraphModelFiles {
  const traces = TRACE_BATCHES.map((n, k) => {
    const rng = new Rng(0x6a09e667 + k);
    const inputs = network.inputs.map((t) =>
      tf.tensor(rng.fillNormal(new Float32Array(n * t.shape.reduce((a, b) => a * b, 1))), [n, ...t.shape]),
    );
    try {
      return traceForward(network.forward, inputs);
    } finally {
      for (const t of inputs) t.dispose();
    }
  }) as [ReturnType<typeof traceForward>, ReturnType<typeof traceForward>];
  return buildGraphModel(traces, {
    inputNames: network.inputs.map((i) => i.name),
    outputName: network.output.name,
    batches: TRACE_BATCHES,
    weightsPath: EXPORT_FILES.weights,
  });
}

/** Loads the model back as a browser would (tfjs-converter, from memory) and compares with `example`. */
async function selfCheck(
  files: GraphModelFiles,
  network: ExportableNetwork,
  example: { inputs: Float32Array[]; output: Float32Array },
  count: number,
): Promise<void> {
  const tfjs = await import('@tensorflow/tfjs');
  const specs = files.modelJson.weightsManifest.flatMap((g) => g.weights) as tf.io.WeightsManifestEntry[];
  const w = files.weights;
  const model = await tfjs.loadGraphModel(
    tfjs.io.fromMemory({
      modelTopology: files.modelJson.modelTopology,
      weightSpecs: specs,
      weightData: w.buffer.slice(w.byteOffset, w.byteOffset + w.byteLength) as ArrayBuffer,
    }),
  );
  try {
    const got = tf.tidy(() => {
      const feeds = Object.fromEntries(
        network.inputs.map((t, i) => [t.name, tf.tensor(example.inputs[i]!, [count, ...t.shape])]),
      );
      return (model.execute(feeds, network.output.name) as tf.Tensor).dataSync() as Float32Array;
    });
    let worst = got.length === example.output.length ? 0 : Number.POSITIVE_INFINITY;
    for (let i = 0; i < got.length && worst < Number.POSITIVE_INFINITY; i++)
      worst = Math.max(worst, Math.abs(got[i]! - example.output[i]!));
    if (!(worst <= SELF_CHECK_TOLERANCE))
      throw new InferenceError(
        'NOT_EXPORTABLE',
        `the exported graph disagrees with the trainer (largest difference ${worst} over ${count} examples)`,
      );
  } finally {
    model.dispose();
  }
}

function readme(
  m: { model: string; trialId: string; step: number; net: NetName; stage?: number },
  network: ExportableNetwork,
): string {
  const what = m.net === 'g' ? 'generator' : 'discriminator';
  const io = (t: { name: string; shape: number[]; description: string }) =>
    `- \`${t.name}\`: float32 [batch, ${t.shape.join(', ')}]${t.shape.length ? '' : ' (one value per example)'}: ${t.description}`;
  const feeds = network.inputs
    .map((t) => `${t.name}: tf.tensor(/* ... */, [n, ${t.shape.join(', ')}])`)
    .join(', ');
  return `# ${m.model} ${what} of trial ${m.trialId}, step ${m.step}${m.stage !== undefined ? ` (stage ${m.stage})` : ''}

A TensorFlow.js graph model written by \`gantry export\`: load it with stock \`@tensorflow/tfjs\`, no Gantry code.

Inputs:
${network.inputs.map(io).join('\n')}

Output:
${io(network.output)}
${network.notes.length ? `\n${network.notes.map((n) => `Note: ${n}.`).join('\n')}\n` : ''}
\`\`\`js
import * as tf from '@tensorflow/tfjs';
const model = await tf.loadGraphModel('https://your.host/path/model.json'); // served beside weights.bin
const out = model.execute({ ${feeds} }, '${network.output.name}');
\`\`\`

\`example.json\` holds inputs and what the trainer itself made of them: a loaded copy should agree to ~1e-5.
\`gantry-export.json\` repeats the inputs, output and notes as JSON.
`;
}
