import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { readInfraFiles } from './infra-files.ts';
import { manifestsYaml, renderManifests } from './render.ts';
import { loadValues, type SetArgument } from './values.ts';
import { ValuesError } from './values-error.ts';

/** Exit status of `gantry k8s render` when the values are invalid (1 is left to other failures). */
export const INVALID_VALUES_EXIT = 2;

/** What `gantry k8s render` was given. */
export interface RenderOptions {
  values: string[];
  sets: SetArgument[];
  output?: string;
}

/**
 * `gantry k8s render`: the manifests as YAML on stdout, or in `output`. Invalid values print each
 * problem on stderr (`worker.gpu.replicas: must be >= 0`), nothing else, and set exit status 2.
 */
export function runRender(
  opts: RenderOptions,
  io: { stdout: (s: string) => void; stderr: (s: string) => void } = {
    stdout: (s) => process.stdout.write(s),
    stderr: (s) => process.stderr.write(s),
  },
): number {
  let text: string;
  let secrets: boolean;
  try {
    const values = loadValues({ files: opts.values, sets: opts.sets });
    const objects = renderManifests(values, readInfraFiles());
    secrets = objects.some((o) => o.kind === 'Secret');
    // The sources, but no --set value: one may be a password.
    const sources = [
      'infra/k8s/values.yaml',
      ...opts.values,
      ...opts.sets.map((s) => `${s.asString ? '--set-string' : '--set'} ${s.assignment.split('=')[0]}=...`),
    ];
    text = manifestsYaml(objects, [
      'Rendered by `gantry k8s render` (infra/k8s/README.md); apply with kubectl apply -f <this file>.',
      `Values: ${sources.join(', ')}`,
    ]);
  } catch (err) {
    if (!(err instanceof ValuesError)) throw err;
    io.stderr('error: invalid values\n');
    for (const i of err.issues) io.stderr(`  ${i.path || '(values)'}: ${i.message}\n`);
    return INVALID_VALUES_EXIT;
  }
  // A file holding Secrets the values gave is readable by its owner only.
  if (opts.output !== undefined) writeFileSync(opts.output, text, { mode: secrets ? 0o600 : 0o644 });
  else io.stdout(text);
  return 0;
}

/** Adds `gantry k8s render` to the program. */
export function registerK8sCommand(program: Command): void {
  const k8s = program.command('k8s').description('Kubernetes deployment (infra/k8s/README.md)');
  // --set and --set-string share one list, so their order on the command line is kept.
  const sets: SetArgument[] = [];
  k8s
    .command('render')
    .description(
      'print the manifests of a Gantry deployment as YAML (for kubectl apply -f - or GitOps): infra/k8s/values.yaml, then each -f file, then each --set, later ones winning; values are checked against infra/k8s/values.schema.json',
    )
    .option(
      '-f, --values <file>',
      'a values file laid over the defaults (repeatable)',
      (f: string, acc: string[]) => [...acc, f],
      [],
    )
    .option(
      '--set <path=value>',
      'one value (repeatable): a.b[0].c=value; true/false/null/numbers/[]/{} typed, else text',
      (s: string) => {
        sets.push({ assignment: s, asString: false });
        return s;
      },
    )
    .option(
      '--set-string <path=value>',
      'one value kept as text (repeatable), e.g. image tags like 1.10',
      (s: string) => {
        sets.push({ assignment: s, asString: true });
        return s;
      },
    )
    .option('-o, --output <file>', 'write the YAML to this file instead of stdout')
    .action((opts: { values: string[]; output?: string }) => {
      const code = runRender({ values: opts.values, sets: [...sets], output: opts.output });
      if (code !== 0) process.exitCode = code;
    });
}
