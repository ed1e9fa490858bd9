import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';

function findChromium(): string | undefined {
  try {
    return execFileSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Debian's chromium (scripts/browser.sh installs it), or undefined. */
export const chromiumPath = findChromium();

/**
 * Whether a browser suite should run: always with CI=true (where a missing chromium then fails in
 * `launchChromium`), otherwise only when chromium is installed, saying loudly that it was skipped.
 */
export function browserTestsEnabled(suite: string): boolean {
  if (chromiumPath || process.env.CI === 'true') return true;
  console.warn(`${suite}: SKIPPED, chromium is not installed (run \`bash scripts/browser.sh\`).`);
  return false;
}

/**
 * Headless chromium with a fresh profile. The flags keep it off the network (this machine has
 * none: background services would only fail) and make it run as root in a container.
 */
export async function launchChromium(profilePrefix: string): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  if (!chromiumPath) throw new Error('CI=true but chromium is not installed: run `bash scripts/browser.sh` first.');
  const userDataDir = mkdtempSync(join(tmpdir(), profilePrefix));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: chromiumPath,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
    ],
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}
