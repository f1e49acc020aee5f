import { ValuesError } from './values-error.ts';

/** A plain (JSON-like) object, as YAML parses a mapping. */
export type ValuesObject = { [key: string]: unknown };

export function isValuesObject(v: unknown): v is ValuesObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * `over` laid over `base`, as Helm merges values files: mappings merge key by key, anything else (lists
 * included) replaces, and a `null` removes the key. Neither argument is changed.
 */
export function mergeValues(base: unknown, over: unknown): unknown {
  if (!isValuesObject(base) || !isValuesObject(over)) return structuredClone(over);
  const out: ValuesObject = structuredClone(base);
  for (const [key, value] of Object.entries(over)) {
    if (value === null) delete out[key];
    else out[key] = mergeValues(out[key], value);
  }
  return out;
}

/** One step of a `--set` path: a mapping key or a list index. */
type PathStep = { key: string } | { index: number };

/**
 * Splits `a.b[0].c` into steps. `\.` is a dot inside a key (`nodeSelector.nvidia\.com/gpu\.present`);
 * `[n]` indexes a list.
 */
function parsePath(path: string, arg: string): PathStep[] {
  const steps: PathStep[] = [];
  let key = '';
  let i = 0;
  const bad = (why: string) => new ValuesError([{ path: `--set ${arg}`, message: why }]);
  const endKey = () => {
    if (key === '') throw bad('empty key in the path');
    steps.push({ key });
    key = '';
  };
  while (i < path.length) {
    const c = path[i]!;
    if (c === '\\' && path[i + 1] === '.') {
      key += '.';
      i += 2;
    } else if (c === '.') {
      if (key !== '') endKey();
      else if (steps.length === 0 || !('index' in steps[steps.length - 1]!))
        throw bad('empty key in the path');
      i += 1;
    } else if (c === '[') {
      if (key !== '') endKey();
      const close = path.indexOf(']', i);
      const digits = close < 0 ? '' : path.slice(i + 1, close);
      if (!/^[0-9]+$/.test(digits)) throw bad('a list index is [<n>], n a whole number');
      steps.push({ index: Number(digits) });
      i = close + 1;
      if (i < path.length && path[i] !== '.' && path[i] !== '[') throw bad('expected . or [ after ]');
    } else {
      key += c;
      i += 1;
    }
  }
  if (key !== '') endKey();
  if (steps.length === 0) throw bad('expected path=value');
  return steps;
}

/**
 * The value of a `--set` assignment: `true`/`false`, `null` (removes the key), a number, `[]` or `{}`
 * (empty), else the text itself. `--set-string` (`asString`) always keeps the text.
 */
function parseSetValue(text: string, asString: boolean): unknown {
  if (asString) return text;
  if (text === 'true') return true;
  if (text === 'false') return false;
  if (text === 'null') return null;
  if (text === '[]') return [];
  if (text === '{}') return {};
  if (/^-?(0|[1-9][0-9]*)(\.[0-9]+)?$/.test(text)) return Number(text);
  return text;
}

/**
 * Applies one `--set path=value` to `values` in place: the value replaces whatever the path held (a
 * mapping or list too); missing mappings on the way are created. The value is taken whole: commas and
 * braces are literal (unlike Helm, whose `{a,b}` is a list: `--set gantry.prefix={gantry}` means the
 * string here).
 * @throws ValuesError naming the argument when it is not `path=value` or indexes past a list's end.
 */
export function applySet(values: ValuesObject, arg: string, asString = false): void {
  const eq = arg.indexOf('=');
  if (eq <= 0) throw new ValuesError([{ path: `--set ${arg}`, message: 'expected path=value' }]);
  const steps = parsePath(arg.slice(0, eq), arg);
  const value = parseSetValue(arg.slice(eq + 1), asString);
  let node: unknown = values;
  for (let s = 0; s < steps.length; s++) {
    const step = steps[s]!;
    const last = s === steps.length - 1;
    const next = steps[s + 1];
    const fresh = () => (next && 'index' in next ? [] : {});
    if ('key' in step) {
      if (!isValuesObject(node)) throw badStep(arg, steps, s, 'is not a mapping');
      if (last) {
        if (value === null) delete node[step.key];
        else node[step.key] = value;
      } else {
        if (node[step.key] === undefined || node[step.key] === null) node[step.key] = fresh();
        node = node[step.key];
      }
    } else {
      if (!Array.isArray(node)) throw badStep(arg, steps, s, 'is not a list');
      if (step.index > node.length) {
        throw badStep(arg, steps, s, `has ${node.length} items: index ${step.index} is past its end`);
      }
      if (last) {
        if (value === null) node.splice(step.index, 1);
        else node[step.index] = value;
      } else {
        if (node[step.index] === undefined || node[step.index] === null) node[step.index] = fresh();
        node = node[step.index];
      }
    }
  }
}

function badStep(arg: string, steps: PathStep[], at: number, what: string): ValuesError {
  const where = formatPath(steps.slice(0, at)) || '(the values)';
  return new ValuesError([{ path: `--set ${arg}`, message: `${where} ${what}` }]);
}

/** `a.b[0].c` for steps (keys with dots are written as they are). */
function formatPath(steps: PathStep[]): string {
  return steps.map((st, i) => ('index' in st ? `[${st.index}]` : i === 0 ? st.key : `.${st.key}`)).join('');
}
