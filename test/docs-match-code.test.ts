import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';

const ROOT = new URL('..', import.meta.url).pathname;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sourceFiles(path) : path.endsWith('.ts') ? [path] : [];
  });
}

/** Error codes the server can answer with: first arguments of GatewayError and `code: '…'` literals. */
function serverErrorCodes(): string[] {
  const codes = new Set<string>();
  const files = ['src/http', 'src/core', 'src/store', 'src/ops', 'src/auth'].flatMap((dir) => sourceFiles(join(ROOT, dir)));
  files.push(join(ROOT, 'src/errors.ts'));
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    for (const match of text.matchAll(/(?:new GatewayError\(|super\()\s*'([a-z_]+)'/g)) codes.add(match[1]!);
    for (const match of text.matchAll(/\bcode: '([a-z_]+)'/g)) codes.add(match[1]!);
  }
  // Raised only by the token issuer for the CLI; no HTTP route passes it an unchecked user id.
  codes.delete('invalid_user_id');
  return [...codes].sort();
}

describe('documentation matches the code', () => {
  const codes = serverErrorCodes();

  it('finds the error codes it is meant to check', () => {
    expect(codes).toEqual(expect.arrayContaining(['invalid_json', 'invalid_cursor', 'token_expired', 'store_unavailable', 'rate_limited']));
  });

  it.each(codes)('lists error code %s in openapi.yaml and the README', (code) => {
    expect(readFileSync(join(ROOT, 'openapi.yaml'), 'utf8')).toContain(code);
    expect(readFileSync(join(ROOT, 'README.md'), 'utf8')).toContain(`\`${code}\``);
  });

  it('documents every environment variable the configuration reads', () => {
    const configSource = readFileSync(join(ROOT, 'src/config.ts'), 'utf8');
    const variables = [...configSource.matchAll(/^ {2}([A-Z][A-Z0-9_]+): /gm)].map((match) => match[1]!);
    expect(variables.length).toBeGreaterThan(20);
    expect(() => loadConfig({})).not.toThrow();
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    for (const variable of variables) expect(readme, variable).toContain(`\`${variable}\``);
  });
});
