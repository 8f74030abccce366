/**
 * The layer rule (docs/architecture.md): a module may import only from its own folder and from
 * the layers below it. Order, lowest first:
 *
 *   core ← config ← metadata ← storage ← frontdoor ← objectstore ← dumps ← pipeline ← jobs
 *        ← workload ← deployment ← {web, cli} ← main
 *
 * Two layers of the same rank (web and cli) may not import each other. A file outside src/
 * (tests, benchmarks, scripts) may import anything. Circles are checked by
 * scripts/check-import-cycles.ts.
 */
import path from 'node:path';

export const LAYERS = {
  core: 0,
  config: 1,
  metadata: 2,
  storage: 3,
  frontdoor: 4,
  objectstore: 5,
  dumps: 6,
  pipeline: 7,
  jobs: 8,
  workload: 9,
  deployment: 10,
  web: 11,
  cli: 11,
  main: 12,
};

/** The layer of a file under src/, or undefined for anything else. */
export function layerOf(file) {
  const rel = path.relative(path.resolve(import.meta.dirname, 'src'), file);
  if (rel.startsWith('..') || path.isAbsolute(rel)) return undefined;
  const top = rel.split(path.sep)[0];
  return top in LAYERS ? top : `unknown:${top}`;
}

const layersRule = {
  meta: {
    type: 'problem',
    docs: { description: 'a lower layer must not import a higher one (docs/architecture.md)' },
    schema: [],
  },
  create(context) {
    const file = context.filename;
    const from = layerOf(file);
    if (from === undefined) return {};
    const check = (node, spec) => {
      if (typeof spec !== 'string' || !spec.startsWith('.')) return;
      const to = layerOf(path.resolve(path.dirname(file), spec));
      if (from.startsWith('unknown:')) {
        context.report({
          node,
          message: `src/${from.slice(8)}/ is not a known layer: add it to eslint.layers.js`,
        });
        return;
      }
      if (to === undefined || to === from) return;
      if (to.startsWith('unknown:') || LAYERS[to] >= LAYERS[from])
        context.report({
          node,
          message: `layer '${from}' may not import from '${to}' (${spec}): lower layers never import higher ones (docs/architecture.md)`,
        });
    };
    return {
      ImportDeclaration: (n) => check(n, n.source.value),
      ExportNamedDeclaration: (n) => n.source && check(n, n.source.value),
      ExportAllDeclaration: (n) => check(n, n.source.value),
      ImportExpression: (n) => n.source.type === 'Literal' && check(n, n.source.value),
    };
  },
};

export const layersPlugin = { rules: { layers: layersRule } };
