import { readFileSync } from 'node:fs';
import { parse } from 'acorn';
import { describe, expect, it } from 'vitest';
import { ERROR_STATUS, type ErrorCode } from '../src/error-codes.js';
import { GatewayError, IdempotencyConflictError, StoreUnavailableError } from '../src/errors.js';
import { CODE_FOR_HTTP_ERROR_STATUS } from '../src/http/error-responses.js';

describe('error codes come from one table', () => {
  it('gives every GatewayError the status of its code', () => {
    for (const code of Object.keys(ERROR_STATUS) as ErrorCode[]) {
      const error = new GatewayError(code, 'message');
      expect(error.status, code).toBe(ERROR_STATUS[code]);
      expect(error.code).toBe(code);
    }
    expect(new StoreUnavailableError(new Error('down'))).toMatchObject({ code: 'store_unavailable', status: 503, retryAfterSeconds: 2 });
    expect(new IdempotencyConflictError('m1')).toMatchObject({ code: 'idempotency_conflict', status: 409 });
  });

  it('answers http-errors raised by Koa with a code of the same status', () => {
    for (const [status, code] of Object.entries(CODE_FOR_HTTP_ERROR_STATUS)) expect(ERROR_STATUS[code!], code).toBe(Number(status));
  });

  it('keeps the table importable by the ES5 browser client: no imports, ES5 syntax only', () => {
    const source = readFileSync(new URL('../src/error-codes.ts', import.meta.url), 'utf8');
    expect(source).not.toMatch(/^\s*import\b/m);
    // What is left after removing the TypeScript-only parts must parse as ES5.
    const javascript = source
      .replace(/^export type .*$/m, '')
      .replace(/\} as const;/, '};')
      .replace(/^export const /m, 'var ');
    const program = parse(javascript, { ecmaVersion: 5 }) as unknown as {
      body: Array<{ type: string; declarations?: Array<{ init: { type: string; properties: Array<{ value: { type: string; value: unknown } }> } }> }>;
    };
    // A pure object literal of numbers: nothing the browser would have to construct or polyfill.
    expect(program.body.map((node) => node.type)).toEqual(['VariableDeclaration']);
    const table = program.body[0]!.declarations![0]!.init;
    expect(table.type).toBe('ObjectExpression');
    expect(table.properties.every((property) => property.value.type === 'Literal' && typeof property.value.value === 'number')).toBe(true);
  });
});
