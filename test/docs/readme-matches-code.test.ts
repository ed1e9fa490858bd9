import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ENV_VARIABLES, loadConfig } from '../../src/config.js';
import { ERROR_STATUS, type ErrorCode } from '../../src/error-codes.js';

const ROOT = new URL('../..', import.meta.url).pathname;
const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
const openapi = readFileSync(join(ROOT, 'openapi.yaml'), 'utf8');

/** Codes no HTTP route answers (none since presence queries answer invalid_user_id too). */
const CLI_ONLY: readonly ErrorCode[] = [];
const httpCodes = (Object.keys(ERROR_STATUS) as ErrorCode[]).filter((code) => !CLI_ONLY.includes(code)).sort();

/** The `enum` of the Error schema's `code` in openapi.yaml. */
function openapiErrorCodes(): string[] {
  const match = /\n {12}code:\n {14}type: string\n {14}enum: \[([^\]]*)\]/.exec(openapi);
  if (!match) throw new Error('openapi.yaml: the Error schema has no `code` enum');
  return match[1]!.split(',').map((code) => code.trim()).sort();
}

/** Rows of the README's error code table: each backticked code with the status in its row. */
function readmeErrorRows(): Array<{ code: string; status: number }> {
  const start = readme.indexOf('| Code | Status | When |');
  if (start < 0) throw new Error('README.md: no error code table');
  const rows = readme.slice(start).split('\n\n')[0]!.split('\n').slice(2);
  return rows.flatMap((row) => {
    const [codes, status] = row.split('|').slice(1, 3);
    return [...codes!.matchAll(/`([a-z_]+)`/g)].map((match) => ({ code: match[1]!, status: Number(status) }));
  });
}

describe('documentation matches the code', () => {
  it('lists exactly the error table in openapi.yaml', () => {
    expect(openapiErrorCodes()).toEqual(httpCodes);
  });

  it('lists exactly the error table in the README, each with its status', () => {
    const rows = readmeErrorRows();
    expect(rows.map((row) => row.code).sort()).toEqual(httpCodes);
    for (const { code, status } of rows) expect(status, code).toBe(ERROR_STATUS[code as ErrorCode]);
  });

  it('documents every environment variable the configuration reads', () => {
    expect(ENV_VARIABLES.length).toBeGreaterThan(20);
    expect(() => loadConfig({})).not.toThrow();
    for (const variable of ENV_VARIABLES) expect(readme, variable).toContain(`\`${variable}\``);
  });
});
