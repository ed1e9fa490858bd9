import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BenchReport } from '../../src/bench/command.js';
import { assertBuilt, ROOT, spawnGateway, type GatewayProcess } from '../support/process.js';

/** The `npm run bench -- …` command of the README's "## Load testing" recipe, continuation lines joined. */
function recipeBenchCommand(): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('\n## Load testing\n');
  expect(start).toBeGreaterThan(0);
  const section = readme.slice(start + 1, readme.indexOf('\n## ', start + 1));
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1];
  expect(block).toBeDefined();
  const lines = block!.split('\n');
  const first = lines.findIndex((line) => line.trimStart().startsWith('npm run bench'));
  expect(first).toBeGreaterThanOrEqual(0);
  let command = '';
  for (let index = first; index < lines.length; index += 1) {
    const line = lines[index]!;
    if (!line.trimEnd().endsWith('\\')) {
      command += line.replace(/\s+#.*$/, '');
      break;
    }
    command += `${line.trimEnd().slice(0, -1)} `;
  }
  return command.trim();
}

/** Runs a shell command line as a user would, in the package directory, with exactly `env` (plus PATH and HOME). */
function runShell(command: string, env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('bash', ['-c', command], { cwd: ROOT, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? tmpdir(), ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe("the README's load-testing recipe", () => {
  let dir: string;
  let gateway: GatewayProcess;

  beforeAll(async () => {
    assertBuilt();
    dir = mkdtempSync(join(tmpdir(), 'lpg-bench-recipe-'));
    // As the recipe's `npm start` runs it in a fresh checkout: no GATEWAY_JWT_SECRET, so the gateway
    // keeps a development secret next to SQLITE_FILE.
    gateway = await spawnGateway({ SQLITE_FILE: join(dir, 'gateway.sqlite'), PUBLISH_RATE_PER_USER: '0' });
    expect(existsSync(join(dir, 'dev-jwt-secret'))).toBe(true);
  });
  afterAll(async () => {
    await gateway?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs its bench command as written, without GATEWAY_JWT_SECRET, against a gateway on the development secret', async () => {
    const command = recipeBenchCommand();
    expect(command).toMatch(/^npm run bench -- /);
    // Only the size of the run, the target and the output move (later options win): the
    // credentials are exactly what the recipe gives.
    const overrides = `--url ${gateway.url} --clients 4 --rate 8 --duration 1 --short none --long 1 --out ${join(dir, 'recipe')} --no-progress`;
    const result = await runShell(`${command} ${overrides}`, { SQLITE_FILE: join(dir, 'gateway.sqlite') });
    expect(result.stderr).not.toMatch(/Tokens are needed/);
    expect(result.code).toBe(0);
    expect(result.stderr).toContain(`development secret in ${join(dir, 'dev-jwt-secret')}`);
    const report = JSON.parse(readFileSync(join(dir, 'recipe.json'), 'utf8')) as BenchReport;
    expect(report.modes[0]).toMatchObject({ published: 8, delivered: 8, lost: 0, errors: 0 });
  }, 60_000);
});
