import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, loadConfig } from '@gantry/shared';
import { afterAll, describe, expect, it } from 'vitest';
import { findOnPath, LocalStack } from '../packages/coordinator/src/local-stack/index.ts';
import { testEnv } from './support/infra.ts';
import {
  type LocalPrometheus,
  type PromSample,
  startPrometheus,
  testPrometheusConfig,
} from './support/prometheus.ts';
import { waitFor } from './support/wait-for.ts';

const root = join(import.meta.dirname, '..');
const grafanaDir = join(root, 'infra', 'grafana');
const prometheusDir = join(root, 'infra', 'prometheus');

interface DataSourceRef {
  type?: string;
  uid?: string;
}
interface Target {
  refId?: string;
  expr?: string;
  datasource?: DataSourceRef;
}
interface Panel {
  id?: number;
  type: string;
  title?: string;
  description?: string;
  datasource?: DataSourceRef;
  targets?: Target[];
  panels?: Panel[];
  gridPos?: { h: number; w: number; x: number; y: number };
  /** A text panel's: `mode` markdown, html or code, and the content Grafana fills variables into. */
  options?: { mode?: string; content?: string };
}
interface Variable {
  name: string;
  type: string;
  description?: string;
  datasource?: DataSourceRef;
  definition?: string;
  query?: string | { query?: string };
  current?: { text?: string; value?: string | string[] };
}
interface Dashboard {
  uid?: string;
  title?: string;
  schemaVersion?: number;
  panels?: Panel[];
  templating?: { list?: Variable[] };
}
/** One target of one panel: what Grafana sends to Prometheus. */
interface PanelQuery {
  dashboard: string;
  panel: string;
  refId: string;
  expr: string;
}

/**
 * Panels that hold no query, and so no datasource or targets: rows, and text panels (whose content may
 * still use variables: they are checked like queries).
 */
const LAYOUT_PANELS = new Set(['row', 'text', 'dashlist', 'news']);
/** Grafana's built-in variables, as this test fills them in (`__from` and `__to` in epoch ms). */
const BUILTINS: Record<string, string> = {
  __from: '1700000000000',
  __to: '1700003600000',
  __rate_interval: '1m',
  __interval: '15s',
  __interval_ms: '15000',
  __range: '1h',
  __range_s: '3600',
  __range_ms: '3600000',
};

const dashboardFiles = (await readdir(join(grafanaDir, 'dashboards')))
  .filter((f) => f.endsWith('.json'))
  .sort();
const dashboards = await Promise.all(
  dashboardFiles.map(async (file) => ({
    file,
    text: await readFile(join(grafanaDir, 'dashboards', file), 'utf8'),
  })),
);
const datasourceYaml = await readFile(
  join(grafanaDir, 'provisioning', 'datasources', 'prometheus.yml'),
  'utf8',
);
const providerYaml = await readFile(join(grafanaDir, 'provisioning', 'dashboards', 'gantry.yml'), 'utf8');
/** The uid of the provisioned datasource (the file is simple enough to read without a YAML parser). */
const datasourceUid = /^\s*uid:\s*['"]?([\w-]+)['"]?\s*$/m.exec(datasourceYaml)?.[1];

function parse(d: { file: string; text: string }): Dashboard {
  return JSON.parse(d.text) as Dashboard;
}

/** Every panel, rows' nested panels included. */
function allPanels(d: Dashboard): Panel[] {
  return (d.panels ?? []).flatMap((p) => [p, ...(p.panels ?? [])]);
}

function queriesOf(file: string, d: Dashboard): PanelQuery[] {
  return allPanels(d)
    .filter((p) => !LAYOUT_PANELS.has(p.type))
    .flatMap((p) =>
      (p.targets ?? []).map((t) => ({
        dashboard: file,
        panel: p.title ?? `#${p.id}`,
        refId: t.refId ?? '?',
        expr: t.expr ?? '',
      })),
    );
}

const allQueries = dashboards.flatMap((d) => queriesOf(d.file, parse(d)));

function variableQuery(v: Variable): string {
  return typeof v.query === 'string' ? v.query : (v.query?.query ?? v.definition ?? '');
}

/** `$x`, `${x}`, `${x:fmt}`, `[[x]]`, `[[x:fmt]]`: the name in group 1, 3 or 5, a format in 2 or 4. */
const VARIABLE_REF = /\$\{(\w+)(?::(\w+))?\}|\[\[(\w+)(?::(\w+))?\]\]|\$(\w+)/g;
/** The formats this test applies; others leave the value as it is (right for one plain value). */
const FORMATS: Record<string, (value: string) => string> = { percentencode: encodeURIComponent };

/** Variable names an expression refers to. */
function variablesIn(expr: string): string[] {
  return [...expr.matchAll(VARIABLE_REF)].map((m) => m[1] ?? m[3] ?? m[5]!);
}

/** Fills in variables as Grafana would for a single selected value; throws on one it does not know. */
function substitute(expr: string, vars: Record<string, string>): string {
  return expr.replace(VARIABLE_REF, (m, a, fa, b, fb, c) => {
    const name = (a ?? b ?? c) as string;
    const value = vars[name] ?? BUILTINS[name];
    if (value === undefined) throw new Error(`unknown variable ${m} in ${expr}`);
    const format = FORMATS[(fa ?? fb ?? '') as string];
    return format ? format(value) : value;
  });
}

/** What Grafana fills variables into besides queries: every panel's title and description, text content. */
function panelTexts(d: Dashboard): string[] {
  return allPanels(d).flatMap((p) => [p.title ?? '', p.description ?? '', p.options?.content ?? '']);
}

const trialDetail = parse(dashboards.find((d) => d.file === 'trial-detail.json')!);

/** The trial dashboard's text panel whose title starts with `title`. */
function textPanel(title: string): Panel {
  const p = allPanels(trialDetail).find((x) => x.title?.startsWith(title));
  if (p?.type !== 'text') throw new Error(`trial-detail.json has no text panel "${title}"`);
  return p;
}

/** The `src` of each `<img>` in a text panel, variables not filled in. */
function imageSources(p: Panel): string[] {
  return [...(p.options?.content ?? '').matchAll(/<img\b[^>]*?\ssrc="([^"]*)"/g)].map((m) => m[1]!);
}

/** The URL of the panel's one image, with the variables filled in as Grafana would. */
function imageUrl(p: Panel, vars: Record<string, string>): URL {
  const sources = imageSources(p);
  expect(sources, `<img src> of "${p.title}"`).toHaveLength(1);
  return new URL(substitute(sources[0]!, vars));
}

const LATEST_GRID = 'Latest sample grid';
const STEP_GRID = 'Sample grid of a chosen step';

describe('Grafana provisioning and dashboards (static)', () => {
  it('provisions a Prometheus datasource and a file provider for the dashboards', () => {
    expect(datasourceUid).toBe('gantry-prometheus');
    expect(datasourceYaml).toMatch(/^\s*type:\s*prometheus\s*$/m);
    expect(datasourceYaml).toMatch(/^\s*url:\s*\S+/m);
    expect(providerYaml).toMatch(/^\s*type:\s*file\s*$/m);
    expect(providerYaml).toMatch(/^\s*path:\s*\S+/m);
    expect(dashboardFiles).toEqual(expect.arrayContaining(['sweep-overview.json', 'trial-detail.json']));
  });

  it.each(dashboards.map((d) => [d.file, d] as const))('%s is a dashboard of unique panels', (_f, d) => {
    const dash = parse(d);
    expect(dash.uid).toMatch(/^[\w-]{1,40}$/);
    expect(dash.title).toBeTruthy();
    expect(dash.schemaVersion).toBeGreaterThanOrEqual(36);
    const panels = allPanels(dash);
    expect(panels.length).toBeGreaterThan(0);
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size, 'panel ids are unique').toBe(ids.length);
    for (const p of panels) {
      expect(p.gridPos, `gridPos of ${p.title}`).toBeDefined();
      expect(p.gridPos!.x + p.gridPos!.w, `width of ${p.title}`).toBeLessThanOrEqual(24);
    }
  });

  it('dashboard uids are unique', () => {
    const uids = dashboards.map((d) => parse(d).uid);
    expect(new Set(uids).size).toBe(uids.length);
  });

  it('every panel queries the provisioned datasource, with a PromQL expression per target', () => {
    const problems: string[] = [];
    for (const d of dashboards) {
      for (const p of allPanels(parse(d))) {
        const where = `${d.file}: panel "${p.title}"`;
        if (LAYOUT_PANELS.has(p.type)) {
          // Accepted on purpose: nothing to query. A target here would be a panel drawn as the wrong type.
          if (p.targets?.length || p.datasource) problems.push(`${where}: a ${p.type} panel with a query`);
          continue;
        }
        if (p.datasource?.type !== 'prometheus' || p.datasource.uid !== datasourceUid)
          problems.push(`${where}: datasource ${JSON.stringify(p.datasource)}`);
        if (!p.targets?.length) problems.push(`${where}: no targets`);
        const refIds = (p.targets ?? []).map((t) => t.refId);
        if (new Set(refIds).size !== refIds.length) problems.push(`${where}: duplicate refIds`);
        for (const t of p.targets ?? []) {
          if (!t.expr?.trim()) problems.push(`${where}: target ${t.refId} has no expr`);
          if (t.datasource && t.datasource.uid !== datasourceUid)
            problems.push(`${where}: target ${t.refId} datasource ${JSON.stringify(t.datasource)}`);
        }
      }
    }
    expect(problems).toEqual([]);
    expect(allQueries.length).toBeGreaterThan(10);
  });

  it('template variables are label_values queries on the datasource or typed-in values, and every variable used is defined', () => {
    const problems: string[] = [];
    for (const d of dashboards) {
      const dash = parse(d);
      const vars = dash.templating?.list ?? [];
      const names = new Set(vars.map((v) => v.name));
      for (const v of vars) {
        if (v.type === 'query') {
          if (v.datasource?.uid !== datasourceUid) problems.push(`${d.file}: variable ${v.name} datasource`);
          if (!/^label_values\(.+,\s*\w+\)$/.test(variableQuery(v)))
            problems.push(`${d.file}: variable ${v.name} query ${variableQuery(v)}`);
        } else if (v.type === 'textbox' || v.type === 'constant') {
          // The default is `query`; `current` is what a dashboard opened without var-<name> starts at.
          if (!variableQuery(v) || v.current?.value !== variableQuery(v))
            problems.push(`${d.file}: variable ${v.name} default ${JSON.stringify([v.query, v.current])}`);
          if (!v.description) problems.push(`${d.file}: variable ${v.name} says not what to type`);
        } else problems.push(`${d.file}: variable ${v.name} of type ${v.type}`);
      }
      const used = [
        ...queriesOf(d.file, dash).flatMap((q) => variablesIn(q.expr)),
        ...vars.flatMap((v) => variablesIn(variableQuery(v))),
        ...panelTexts(dash).flatMap(variablesIn),
      ];
      for (const name of used)
        if (!names.has(name) && !(name in BUILTINS)) problems.push(`${d.file}: undefined variable $${name}`);
    }
    expect(problems).toEqual([]);
    expect(trialDetail.templating?.list?.map((v) => v.name)).toEqual([
      'sweep',
      'trial',
      'coordinator_url',
      'sample_step',
    ]);
  });

  it('the dashboards show what the issue lists', () => {
    const exprs = (file: string) =>
      allQueries
        .filter((q) => q.dashboard === file)
        .map((q) => q.expr)
        .join('\n');
    // Sweep overview: trials by state, leaderboard by metric, queue depth, worker pool.
    for (const m of ['gantry_trials', 'gantry_trial_objective', 'gantry_queue_jobs', 'gantry_workers'])
      expect(exprs('sweep-overview.json')).toContain(m);
    // Trial detail: losses, D scores, gradient norms, FLD, coverage, images/s, detections.
    for (const m of [
      'gantry_trial_d_loss',
      'gantry_trial_g_loss',
      'gantry_trial_d_real',
      'gantry_trial_d_fake',
      'gantry_trial_grad_norm',
      'gantry_trial_fld',
      'gantry_trial_class_coverage',
      'gantry_trial_images_per_second',
      'gantry_trial_detections_total',
      // Progressive growing: the stage, its resolution and the fade-in.
      'gantry_trial_stage',
      'gantry_trial_resolution',
      'gantry_trial_alpha',
      // srgan and pix2pix: PSNR and SSIM (with bicubic's), L1 to B.
      'gantry_trial_psnr',
      'gantry_trial_psnr_bicubic',
      'gantry_trial_ssim',
      'gantry_trial_l1',
      // DiffAugment: p, and ADA's r_t.
      'gantry_trial_augment_p',
      'gantry_trial_augment_rt',
    ])
      expect(exprs('trial-detail.json')).toContain(m);
  });

  it('every expression is valid PromQL (promtool)', async ({ skip }) => {
    const promtool = await findOnPath('promtool');
    if (promtool === undefined) return skip('promtool is not installed (apt-get install prometheus)');
    // promtool checks PromQL in rule files: one recording rule per panel target, variables filled in.
    const vars = { sweep: 's', trial: 't' };
    const rules = allQueries.map(
      (q, i) =>
        `      - record: gantry_dashboard_query_${i}\n        expr: ${JSON.stringify(substitute(q.expr, vars))}`,
    );
    const dir = await mkdtemp(join(tmpdir(), 'gantry-dash-'));
    try {
      const file = join(dir, 'dashboard-queries.yml');
      await writeFile(file, `groups:\n  - name: dashboards\n    rules:\n${rules.join('\n')}\n`);
      const r = spawnSync(promtool, ['check', 'rules', file], { encoding: 'utf8' });
      const index = allQueries
        .map((q, i) => `${i}: ${q.dashboard} "${q.panel}" ${q.refId}: ${q.expr}`)
        .join('\n');
      expect(r.status, `${r.stdout}${r.stderr}\nqueries by rule number:\n${index}`).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

/**
 * What Grafana's text-panel sanitiser (`sanitizeTextPanelContent`: js-xss's default whitelist, plus `class`
 * and `style` on every tag) keeps of the tags these panels use, and CSS properties its CSS filter keeps.
 * Anything else is dropped silently while `[panels] disable_sanitize_html` is off, as it is by default.
 */
const SANITIZER_KEEPS: Record<string, string[]> = {
  img: ['src', 'alt', 'title', 'width', 'height', 'class', 'style'],
  div: ['class', 'style'],
  a: ['href', 'title', 'target', 'class', 'style'],
};
const CSS_KEEPS = new Set(['display', 'margin', 'max-width', 'max-height', 'text-align']);

describe('the trial dashboard shows sample grids from the coordinator (static)', () => {
  const coordinatorUrl = loadConfig({}).api.url;

  it('has a coordinator URL variable to type in, defaulting to where the CLI finds the coordinator', () => {
    const v = trialDetail.templating?.list?.find((x) => x.name === 'coordinator_url');
    expect(v?.type).toBe('textbox');
    expect(v?.query).toBe(coordinatorUrl);
    expect(v?.current?.value).toBe(coordinatorUrl);
    expect(v?.description).toMatch(/URL browsers reach the coordinator at/);
    const step = trialDetail.templating?.list?.find((x) => x.name === 'sample_step');
    expect([step?.type, step?.query]).toEqual(['textbox', 'latest']);
  });

  it('shows the latest sample grid near the top: an HTML <img> of the latest.png of the selected trial', () => {
    const panel = textPanel(LATEST_GRID);
    expect(panel.options?.mode).toBe('html');
    const [src] = imageSources(panel);
    expect(src).toMatch(
      /^\$\{coordinator_url\}\/v1\/trials\/\$\{trial(:percentencode)?\}\/samples\/latest\.png\?/,
    );
    // Filled in for a coordinator elsewhere and a trial id that needs encoding in a path.
    const url = imageUrl(panel, { coordinator_url: 'https://gantry.example:8443', trial: 's/1 t000' });
    expect(url.origin).toBe('https://gantry.example:8443');
    expect(url.pathname).toBe('/v1/trials/s%2F1%20t000/samples/latest.png');
    // The cache-buster: Grafana redraws a query-less panel at each refresh, and ${__to} moves with "now",
    // so the browser fetches the image again instead of keeping the identical <img>.
    expect(variablesIn(src!)).toContain('__to');
    expect([...url.searchParams.values()]).toContain(BUILTINS.__to);
    // In the first screen: under the stats, above the Training row.
    const training = allPanels(trialDetail).find((p) => p.type === 'row' && p.title === 'Training')!;
    expect(panel.gridPos!.y).toBeLessThan(training.gridPos!.y);
    expect(panel.gridPos!.w).toBeGreaterThanOrEqual(8);
  });

  it('shows the grid of the step typed into $sample_step beside it', () => {
    const panel = textPanel(STEP_GRID);
    expect(panel.options?.mode).toBe('html');
    const vars = { coordinator_url: coordinatorUrl, trial: 's-t000' };
    expect(imageUrl(panel, { ...vars, sample_step: '1200' }).pathname).toBe(
      '/v1/trials/s-t000/samples/1200.png',
    );
    expect(imageUrl(panel, { ...vars, sample_step: 'latest' }).pathname).toBe(
      imageUrl(textPanel(LATEST_GRID), vars).pathname,
    );
    expect(panel.gridPos!.y).toBe(textPanel(LATEST_GRID).gridPos!.y);
  });

  it("text panels use only what Grafana's HTML sanitiser keeps, and image URLs it keeps", () => {
    const problems: string[] = [];
    for (const d of dashboards) {
      for (const p of allPanels(parse(d)).filter((x) => x.type === 'text')) {
        const where = `${d.file}: panel "${p.title}"`;
        if (p.options?.mode !== 'html') continue;
        for (const [, tag, attrs] of (p.options.content ?? '').matchAll(/<(\w+)([^>]*)>/g)) {
          const keeps = SANITIZER_KEEPS[tag!];
          if (!keeps) problems.push(`${where}: <${tag}>`);
          for (const [, name, value] of attrs!.matchAll(/([\w-]+)="([^"]*)"/g)) {
            if (!keeps?.includes(name!)) problems.push(`${where}: <${tag} ${name}>`);
            if (name === 'style')
              for (const decl of value!.split(';').filter((x) => x.trim()))
                if (!CSS_KEEPS.has(decl.split(':')[0]!.trim()))
                  problems.push(`${where}: style ${decl.trim()}`);
          }
        }
        // js-xss blanks a src that does not start with http(s)://, /, ./ or #, so the default must be a URL.
        const vars = Object.fromEntries(
          (parse(d).templating?.list ?? []).map((v) => [v.name, v.current?.value?.toString() ?? 'x']),
        );
        for (const src of imageSources(p))
          if (!/^https?:\/\//.test(substitute(src, vars))) problems.push(`${where}: src ${src}`);
      }
    }
    expect(problems).toEqual([]);
  });
});

/** `label_values(metric{...}, label)` as the PromQL Grafana would send for it. */
function labelValuesQuery(q: string): { expr: string; label: string } {
  const m = /^label_values\((.+),\s*(\w+)\)$/.exec(q);
  if (!m) throw new Error(`not a label_values query: ${q}`);
  return { expr: `group by (${m[2]}) (${m[1]})`, label: m[2]! };
}

const prometheusBin = await findOnPath('prometheus');

describe('Grafana dashboards against a real Prometheus and worker', () => {
  let stack: LocalStack | undefined;
  let prom: LocalPrometheus | undefined;
  let dataDir: string | undefined;
  let sweep: string | undefined;
  let srSweep: string | undefined;

  afterAll(async () => {
    // A trial left running (the test failed before cancelling it) would otherwise be checkpointed and
    // handed back to the queue on close.
    for (const id of [sweep, srSweep]) if (id) await stack?.coordinator?.scheduler.cancel(id).catch(() => {});
    await prom?.close();
    await stack?.close();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('every panel query is valid and returns series for a running trial', async ({ skip }) => {
    if (prometheusBin === undefined) return skip('prometheus is not installed (apt-get install prometheus)');
    dataDir = await mkdtemp(join(tmpdir(), 'gantry-dash-stack-'));
    stack = new LocalStack({
      // One for the progan trial, one for the srgan trial whose image-task series the panels also show.
      workers: 2,
      persist: false,
      dataDir,
      env: testEnv({ GANTRY_PORT: '0' }),
      log: createLogger('dashboards-test', 'silent'),
      schedulerIntervalMs: 250,
    });
    await stack.start();
    const coordinator = stack.coordinator!;
    await waitFor('the workers to register', async () => (await coordinator.workers())[1], 60_000);

    const res = await fetch(`${stack.apiUrl}/v1/sweeps`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        // A progan trial reports every series a DCGAN's does, and its stage, resolution and fade-in too;
        // with ADA, DiffAugment's p and r_t.
        name: 'dashboards',
        model: 'progan',
        dataset: 'mnist',
        method: 'grid',
        metric: { name: 'g_loss', goal: 'minimize' },
        budget: { trials: 1, parallel: 1 },
        // A checkpoint, and with it a sample grid, at each evaluation: the image panels have one to show.
        checkpoint: { every_steps: 20 },
        health: { eval_every_steps: 20 },
        parameters: { base_filters: { value: 8 }, latent_dim: { value: 16 } },
        stages: [{ resolution: 4, stable_steps: 100_000, batch_size: 16 }],
        augment: { adaptive: {} },
      }),
    });
    const created = (await res.json()) as { id: string; trialIds: string[] };
    expect(res.status, JSON.stringify(created)).toBe(201);
    sweep = created.id;
    const trial = created.trialIds[0]!;
    // An srgan trial reports the image-task scores (PSNR, SSIM, bicubic's, L1, class accuracy).
    const sr = await fetch(`${stack.apiUrl}/v1/sweeps`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        name: 'dashboards-sr',
        model: 'srgan',
        dataset: 'mnist',
        metric: { name: 'psnr', goal: 'maximize' },
        budget: { trials: 1, parallel: 1 },
        checkpoint: { every_steps: 20 },
        health: { eval_every_steps: 20, eval_samples: 64 },
        parameters: { base_filters: { value: 8 }, blocks: { value: 1 }, batch_size: { value: 8 } },
        stages: [{ phase: 'pretrain', steps: 100_000 }],
      }),
    });
    const srCreated = (await sr.json()) as { id: string; trialIds: string[] };
    expect(sr.status, JSON.stringify(srCreated)).toBe(201);
    srSweep = srCreated.id;
    const srVars = { sweep: srCreated.id, trial: srCreated.trialIds[0]! };

    const config = testPrometheusConfig(
      await readFile(join(prometheusDir, 'prometheus.yml'), 'utf8'),
      stack.apiUrl,
    );
    const ruleFiles = (await readdir(join(prometheusDir, 'rules'))).filter((f) => f.endsWith('.yml'));
    const files: Record<string, string> = {};
    for (const f of ruleFiles) files[`rules/${f}`] = await readFile(join(prometheusDir, 'rules', f), 'utf8');
    prom = await startPrometheus({ config, files });
    const p = prom;

    const vectorOf = async (expr: string): Promise<PromSample[] | string> => {
      const r = await p.query(expr);
      if (r.status !== 'success') return `error ${r.errorType}: ${r.error}`;
      const result = r.data?.result;
      if (r.data?.resultType === 'scalar') return [{ metric: {}, value: result as [number, string] }];
      return Array.isArray(result)
        ? (result as PromSample[])
        : `unexpected result type ${r.data?.resultType}`;
    };
    await waitFor(
      `Prometheus to scrape trial ${trial} from the worker`,
      async () => {
        const v = await vectorOf(`gantry_trial_step{sweep="${created.id}", trial="${trial}"}`);
        return typeof v !== 'string' && v.length > 0 ? true : undefined;
      },
      45_000,
    );

    // Both jobs found their targets through the coordinator's discovery endpoint; the worker keeps its id.
    // Polled: under the load of a full test run one scrape can miss its timeout.
    const upTargets = async () => {
      const up = await vectorOf('up == 1');
      return typeof up === 'string' ? up : up.map((s) => `${s.metric.job}/${s.metric.worker ?? ''}`).sort();
    };
    const expected = ['gantry-coordinator/', 'gantry-workers/worker-1', 'gantry-workers/worker-2'];
    await waitFor(
      'both scrape jobs to be up',
      async () => (JSON.stringify(await upTargets()) === JSON.stringify(expected) ? true : undefined),
      30_000,
    ).catch(() => undefined);
    expect(await upTargets()).toEqual(expected);
    expect(await vectorOf('gantry_worker_info{exported_worker!=""}')).toEqual([]);

    // Quality series appear after the first evaluation of each trial (the srgan one starts second, on a
    // loaded machine well after the first): wait for both, then poll every panel until all return series.
    for (const id of [trial, srVars.trial])
      await waitFor(
        `trial ${id}'s first evaluation`,
        async () => (await coordinator.store.trial(id))?.quality,
        120_000,
      );
    const vars = { sweep: created.id, trial };
    const check = async (): Promise<string[]> => {
      const failed: string[] = [];
      for (const q of allQueries) {
        let v = await vectorOf(substitute(q.expr, vars));
        // The image-task panels' series come from the srgan trial.
        if (typeof v !== 'string' && v.length === 0) v = await vectorOf(substitute(q.expr, srVars));
        if (typeof v === 'string' || v.length === 0)
          failed.push(
            `${q.dashboard} "${q.panel}" ${q.refId}: ${typeof v === 'string' ? v : 'no series'}: ${q.expr}`,
          );
      }
      for (const d of dashboards) {
        for (const v of (parse(d).templating?.list ?? []).filter((x) => x.type === 'query')) {
          const { expr, label } = labelValuesQuery(substitute(variableQuery(v), vars));
          const r = await vectorOf(expr);
          const values = typeof r === 'string' ? [] : r.map((s) => s.metric[label]);
          const want = label === 'trial' ? trial : created.id;
          if (!values.includes(want))
            failed.push(`${d.file} variable ${v.name}: ${typeof r === 'string' ? r : `no ${want}`}: ${expr}`);
        }
      }
      return failed;
    };
    let failed: string[] = [];
    const deadline = Date.now() + 50_000;
    for (;;) {
      failed = await check();
      if (failed.length === 0 || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 1_000));
    }
    const names = await p.get<{ data?: string[] }>('/api/v1/label/__name__/values');
    const scraped = (names.data ?? []).filter(
      (n) => n.startsWith('gantry_') && !/^gantry_\w+?_(nodejs|process)_/.test(n),
    );
    expect(failed, `panel queries without series; gantry series scraped: ${scraped.join(', ')}`).toEqual([]);

    // The alert rules load and evaluate against the real series without errors.
    const rules = await p.get<{
      data: { groups: { name: string; rules: { name: string; health: string; lastError?: string }[] }[] };
    }>('/api/v1/rules');
    const ruleErrors = rules.data.groups
      .flatMap((g) => g.rules)
      .filter((r) => r.health === 'err')
      .map((r) => `${r.name}: ${r.lastError}`);
    expect(rules.data.groups.length).toBeGreaterThan(0);
    expect(ruleErrors).toEqual([]);

    // The image panels' URLs, filled in as Grafana would for this trial, answer with its sample grid.
    const panelVars = { ...vars, coordinator_url: stack.apiUrl, __to: String(Date.now()) };
    const image = async (panel: string, extra: Record<string, string> = {}) => {
      const r = await fetch(imageUrl(textPanel(panel), { ...panelVars, ...extra }));
      const body = Buffer.from(await r.arrayBuffer());
      return {
        status: r.status,
        type: r.headers.get('content-type'),
        step: r.headers.get('x-gantry-step'),
        body,
      };
    };
    const latest = await waitFor(
      'the first sample grid',
      async () => {
        const r = await image(LATEST_GRID);
        return r.status === 200 ? r : undefined;
      },
      30_000,
    );
    expect(latest.type).toBe('image/png');
    expect(latest.step).toMatch(/^[1-9]\d*$/);
    expect(latest.body.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    const atStep = await image(STEP_GRID, { sample_step: latest.step! });
    expect([atStep.status, atStep.type, atStep.step]).toEqual([200, 'image/png', latest.step]);

    await coordinator.scheduler.cancel(created.id);
    await coordinator.scheduler.cancel(srCreated.id);
    sweep = undefined;
    srSweep = undefined;
    await waitFor(
      'the workers to be idle',
      async () => ((await coordinator.workers()).every((w) => w.busyTrials.length === 0) ? true : undefined),
      30_000,
    );
  }, 270_000);
});
