/**
 * Reads `perf script -F ip,sym` output of a Node process recorded with a jitdump (`--perf-prof`,
 * then `perf inject --jit`), and splits its CPU samples two ways:
 *
 * - by what the leaf frame is: JavaScript (JIT code), V8 (builtins, runtime, GC, compiler),
 *   Node's C++ and libuv, the kernel, libc, other native code (OpenSSL above all);
 * - by owner: the innermost frame of ours (`src/`), else the innermost JavaScript frame (Node's
 *   own, for the pipe), else the native root. So a sample in Node's stream code called from
 *   `pump` is `pump`'s, and one in the TLS handshake under `initRead` is Node's.
 *
 * A jitdump names code where it was when it ran; `--perf-basic-prof` maps keep a name after V8
 * moves the code, so a few hundred µs per session could land on the wrong function.
 */

export type LeafKind = 'js' | 'v8' | 'node' | 'kernel' | 'libc' | 'native';
export const LEAF_KINDS: readonly LeafKind[] = ['js', 'v8', 'node', 'native', 'kernel', 'libc'];

export interface OwnerRow {
  owner: string;
  /** Samples by leaf kind. */
  by: Record<LeafKind, number>;
}

export interface Rollup {
  samples: number;
  byLeaf: Record<LeafKind, number>;
  owners: OwnerRow[];
  /** Samples by leaf symbol (V8 and Node leaves only: which builtin, runtime call or GC phase). */
  leaves: { sym: string; kind: LeafKind; samples: number }[];
}

interface Frame { addr: bigint; sym: string }

const KERNEL = 0xffff_ffff_0000_0000n;

function leafKind(f: Frame): LeafKind {
  if (f.addr >= KERNEL) return 'kernel';
  const s = f.sym;
  if (s.startsWith('JS:')) return 'js';
  if (s.startsWith('Builtin:') || s.startsWith('Builtins_') || s.startsWith('v8::') || s.includes('Runtime_')) return 'v8';
  if (s.startsWith('node::') || s.startsWith('uv_') || s.startsWith('uv__')) return 'node';
  if (s.startsWith('__') || /^(_int_)?(malloc|free|cfree|realloc|calloc|memcpy|memmove|memset)\b/.test(s)) return 'libc';
  return 'native';
}

/** `JS:*pump file:///…/dist/src/relay/session.js:339:9` → `pump src/relay/session.js:339`. */
export function ownerName(sym: string): string {
  return sym.replace(/^JS:[*~^]?/, '').replace(/file:\/\/\/.*?\/(?:dist\/)?src\//, 'src/').replace(/:\d+$/, '');
}

function ownerOf(stack: Frame[]): string {
  const ours = stack.find((f) => f.sym.startsWith('JS:') && /\/(dist\/)?src\//.test(f.sym) && !f.sym.includes('node_modules'));
  if (ours !== undefined) return ownerName(ours.sym);
  const js = stack.find((f) => f.sym.startsWith('JS:'));
  if (js !== undefined) return `[node] ${ownerName(js.sym)}`;
  // No JavaScript on the stack: V8's own work (GC, the optimising compiler, on the main thread or
  // a helper), else the innermost Node frame (a TLS read, a libuv callback), else the root.
  if (stack.some((f) => /^v8::internal::(Heap|Scavenger|MarkCompact|Concurrent|Sweeper|Minor|.*Marking|.*GC)/.test(f.sym))) return '[v8] garbage collector';
  if (stack.some((f) => /^v8::internal::(compiler|Compiler|.*Compil)/.test(f.sym))) return '[v8] compiler';
  const node = stack.find((f) => f.sym.startsWith('node::'));
  return `[native] ${(node ?? stack.at(-1))?.sym.replace(/\(.*$/, '') ?? '?'}`;
}

const empty = (): Record<LeafKind, number> => ({ js: 0, v8: 0, node: 0, kernel: 0, libc: 0, native: 0 });

export function rollUp(script: string): Rollup {
  const owners = new Map<string, Record<LeafKind, number>>();
  const byLeaf = empty();
  const leaves = new Map<string, { sym: string; kind: LeafKind; samples: number }>();
  let samples = 0;
  let stack: Frame[] = [];
  const flush = (): void => {
    if (stack.length === 0) return;
    samples++;
    const kind = leafKind(stack[0]!);
    byLeaf[kind]++;
    if (kind === 'v8' || kind === 'node') {
      const sym = stack[0]!.sym.replace(/\(.*$/, '');
      const l = leaves.get(sym);
      if (l === undefined) leaves.set(sym, { sym, kind, samples: 1 });
      else l.samples++;
    }
    const o = ownerOf(stack);
    let row = owners.get(o);
    if (row === undefined) owners.set(o, (row = empty()));
    row[kind]++;
    stack = [];
  };
  for (const line of script.split('\n')) {
    const m = /^\s*([0-9a-f]+) (.*)$/.exec(line);
    if (m === null) {
      flush();
      continue;
    }
    stack.push({ addr: BigInt(`0x${m[1]}`), sym: m[2]!.trim() });
  }
  flush();
  const rows = [...owners].map(([owner, by]) => ({ owner, by }));
  rows.sort((a, b) => b.by.js + b.by.v8 - (a.by.js + a.by.v8));
  return { samples, byLeaf, owners: rows, leaves: [...leaves.values()].sort((a, b) => b.samples - a.samples) };
}
