#!/usr/bin/env node
/**
 * `npm run build`: compile src/ to dist/src/ with tsc (tsconfig.build.json rewrites the `.ts`
 * imports to `.js`). Plain JavaScript so it runs on a fresh clone before anything is built.
 *
 *   node scripts/build.mjs            always rebuild
 *   node scripts/build.mjs --if-stale rebuild only when a file under src/, a tsconfig or
 *                                     package.json is newer than the last build (`prestart`)
 *
 * tsc writes into a fresh sibling folder that then replaces dist/, so a file deleted from src/
 * never lingers in dist/ and a process starting meanwhile never sees half a build.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DIST = path.join(ROOT, 'dist');
const STAMP = path.join(DIST, '.build-stamp');
const INPUTS = ['src', 'tsconfig.json', 'tsconfig.build.json', 'package.json'];

function newestMtime(p) {
  const st = fs.statSync(p);
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = st.mtimeMs;
  for (const e of fs.readdirSync(p)) newest = Math.max(newest, newestMtime(path.join(p, e)));
  return newest;
}

export function isStale() {
  if (!fs.existsSync(STAMP)) return true;
  const built = fs.statSync(STAMP).mtimeMs;
  return INPUTS.some((p) => fs.existsSync(path.join(ROOT, p)) && newestMtime(path.join(ROOT, p)) > built);
}

function build() {
  const tmp = `${DIST}.partial-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  try {
    execFileSync(process.execPath, [tsc, '-p', path.join(ROOT, 'tsconfig.build.json'), '--outDir', tmp], { cwd: ROOT, stdio: 'inherit' });
  } catch (err) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  fs.chmodSync(path.join(tmp, 'src', 'cli.js'), 0o755);
  fs.writeFileSync(path.join(tmp, '.build-stamp'), `${new Date().toISOString()}\n`);
  const old = `${DIST}.old-${process.pid}`;
  if (fs.existsSync(DIST)) fs.renameSync(DIST, old);
  fs.renameSync(tmp, DIST);
  fs.rmSync(old, { recursive: true, force: true });
}

const ifStale = process.argv.includes('--if-stale');
if (!ifStale || isStale()) {
  try {
    build();
  } catch {
    process.stderr.write('build failed: see the tsc errors above\n');
    process.exit(1);
  }
}
