import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const legacyBundlePath = join(repoRoot, 'dist/client/longpoll.legacy.js');

/** Builds the legacy bundle when it is missing or older than any of its sources, then returns its text. */
export function ensureLegacyBundle(): string {
  const sourceDirs = [join(repoRoot, 'src/client/legacy'), join(repoRoot, 'src/client/core')];
  // The shared modules outside src/client that the bundle includes.
  const shared = ['scripts/build-legacy.mjs', 'src/user-id.ts', 'src/topic-name.ts'].map((file) => join(repoRoot, file));
  const sources = [...shared, ...sourceDirs.flatMap((dir) => readdirSync(dir).map((name) => join(dir, name)))];
  const newestSource = Math.max(...sources.map((file) => statSync(file).mtimeMs));
  if (!existsSync(legacyBundlePath) || statSync(legacyBundlePath).mtimeMs < newestSource) {
    execFileSync(process.execPath, [join(repoRoot, 'scripts/build-legacy.mjs')], { cwd: repoRoot, stdio: 'pipe' });
  }
  return readFileSync(legacyBundlePath, 'utf8');
}
