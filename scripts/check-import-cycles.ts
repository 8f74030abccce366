/**
 * No import circles in src/ (docs/architecture.md): every relative import, `import type`
 * included, forms a graph that must be acyclic. Prints each circle found (as a path of files)
 * and exits 1; part of `npm run lint`. The layer rule (eslint.layers.js) keeps circles from
 * crossing folders; this catches the ones inside a folder.
 */
import fs from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '..', 'src');

function listTs(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? listTs(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

const IMPORT =
  /(?:^|\n)\s*(?:import|export)\b[^'"`;]*?from\s*['"](\.{1,2}\/[^'"]+)['"]|import\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g;

export function importGraph(files: string[]): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const f of files) {
    const text = fs.readFileSync(f, 'utf8');
    const deps: string[] = [];
    for (const m of text.matchAll(IMPORT)) {
      const spec = (m[1] ?? m[2])!;
      deps.push(path.resolve(path.dirname(f), spec).replace(/\.js$/, '.ts'));
    }
    graph.set(
      f,
      deps.filter((d) => d !== f),
    );
  }
  return graph;
}

/** Every elementary circle reached by a depth-first walk (one per back edge). */
export function findCycles(graph: Map<string, string[]>): string[][] {
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const cycles: string[][] = [];
  const visit = (n: string) => {
    state.set(n, 'open');
    stack.push(n);
    for (const d of graph.get(n) ?? []) {
      if (!graph.has(d)) continue;
      if (state.get(d) === 'open') cycles.push([...stack.slice(stack.indexOf(d)), d]);
      else if (!state.has(d)) visit(d);
    }
    stack.pop();
    state.set(n, 'done');
  };
  for (const n of [...graph.keys()].sort()) if (!state.has(n)) visit(n);
  return cycles;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const cycles = findCycles(importGraph(listTs(ROOT)));
  for (const c of cycles)
    process.stderr.write(`import circle: ${c.map((f) => path.relative(ROOT, f)).join(' → ')}\n`);
  if (cycles.length > 0) {
    process.stderr.write(`${cycles.length} import circle(s) in src/: break each (docs/architecture.md)\n`);
    process.exit(1);
  }
  process.stdout.write('no import circles in src/\n');
}
