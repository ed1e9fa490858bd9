import { readFileSync } from 'node:fs';
import { parse } from 'acorn';
import { describe, expect, it } from 'vitest';
import { ERROR_STATUS, type ErrorCode } from '../src/error-codes.js';
import { GatewayError, IdempotencyConflictError, StoreUnavailableError } from '../src/errors.js';
import { CODE_FOR_HTTP_ERROR_STATUS } from '../src/http/error-responses.js';

/**
 * The contract clients switch on, written out by hand: a status changed in ERROR_STATUS must be
 * changed here too, on purpose.
 */
const EXPECTED_STATUS: Record<string, number> = {
  invalid_json: 400,
  invalid_body: 400,
  invalid_request: 400,
  unknown_field: 400,
  invalid_cursor: 400,
  invalid_topic: 400,
  too_many_topics: 400,
  too_many_users: 400,
  invalid_wait: 400,
  invalid_limit: 400,
  invalid_ttl: 400,
  invalid_callback: 400,
  invalid_method_override: 400,
  invalid_user_id: 400,
  missing_token: 401,
  invalid_token: 401,
  token_expired: 401,
  unauthenticated: 401,
  forbidden: 403,
  forbidden_scope: 403,
  forbidden_recipient: 403,
  forbidden_topic: 403,
  forbidden_presence: 403,
  not_found: 404,
  method_not_allowed: 405,
  idempotency_conflict: 409,
  payload_too_large: 413,
  message_too_large: 413,
  unsupported_media_type: 415,
  rate_limited: 429,
  internal_error: 500,
  too_many_polls: 503,
  store_unavailable: 503,
};

/** Codes no HTTP route answers (none since presence queries answer invalid_user_id too). */
const CLI_ONLY: string[] = [];

/**
 * Codes any route may answer (an unknown method, an unexpected failure): openapi.yaml lists them in
 * the code enum but documents no 405 or 500 response on any operation.
 */
const ANY_ROUTE = ['method_not_allowed', 'internal_error'];

const openapi = readFileSync(new URL('../openapi.yaml', import.meta.url), 'utf8');

/** The `enum` of the Error schema's `code`. */
function openapiErrorCodes(): string[] {
  const match = /\n {12}code:\n {14}type: string\n {14}enum: \[([^\]]*)\]/.exec(openapi);
  if (!match) throw new Error('openapi.yaml: the Error schema has no `code` enum');
  return match[1]!.split(',').map((code) => code.trim());
}

/** Every status for which some operation answers with the Error schema (inline or via an ErrorNNN response). */
function openapiErrorStatuses(): Set<number> {
  const lines = openapi.split('\n').filter((line) => /^\s*'\d{3}':.*#\/components\/(responses\/Error|schemas\/Error')/.test(line));
  return new Set(lines.map((line) => Number(/'(\d{3})'/.exec(line)![1])));
}

/**
 * The codes openapi.yaml ties to a status in prose: codes named in a `components.responses.ErrorNNN`
 * entry, and "NNN `code`" phrases anywhere.
 */
function openapiStatusMentions(codes: readonly string[]): Array<{ code: string; status: number; where: string }> {
  const mentions: Array<{ code: string; status: number; where: string }> = [];
  const responses = openapi.slice(openapi.indexOf('\n  responses:\n'), openapi.indexOf('\npaths:'));
  for (const block of responses.split(/\n(?= {4}Error)/).slice(1)) {
    const name = /^ {4}(Error(\d{3})\w*):/.exec(block)!;
    for (const code of codes) if (new RegExp(`\\b${code}\\b`).test(block)) mentions.push({ code, status: Number(name[2]), where: name[1]! });
  }
  for (const match of openapi.matchAll(/\b([45]\d\d) `?([a-z]+(?:_[a-z]+)+)`?/g)) {
    if (codes.includes(match[2]!)) mentions.push({ code: match[2]!, status: Number(match[1]), where: match[0] });
  }
  return mentions;
}

describe('error codes come from one table', () => {
  it('gives every error code the status of the API contract', () => {
    expect(ERROR_STATUS).toEqual(EXPECTED_STATUS);
    for (const [code, status] of Object.entries(EXPECTED_STATUS)) {
      const error = new GatewayError(code as ErrorCode, 'message');
      expect(error.status, code).toBe(status);
      expect(error.code).toBe(code);
    }
    expect(new StoreUnavailableError(new Error('down'))).toMatchObject({ code: 'store_unavailable', status: 503, retryAfterSeconds: 2 });
    expect(new IdempotencyConflictError('m1')).toMatchObject({ code: 'idempotency_conflict', status: 409 });
  });

  it('answers every code with a status that openapi.yaml documents an Error response for', () => {
    const codes = openapiErrorCodes();
    expect([...codes].sort()).toEqual(Object.keys(EXPECTED_STATUS).filter((code) => !CLI_ONLY.includes(code)).sort());
    const documented = openapiErrorStatuses();
    for (const code of codes.filter((code) => !ANY_ROUTE.includes(code))) expect(documented, `${code} (${ERROR_STATUS[code as ErrorCode]})`).toContain(ERROR_STATUS[code as ErrorCode]);
  });

  it('agrees with every status openapi.yaml names a code with', () => {
    const mentions = openapiStatusMentions(openapiErrorCodes());
    // Guards the parsing: these are named in openapi.yaml today.
    expect(mentions.map((mention) => mention.code)).toEqual(expect.arrayContaining(['forbidden_scope', 'forbidden_recipient', 'rate_limited', 'unauthenticated', 'invalid_callback']));
    for (const { code, status, where } of mentions) expect(ERROR_STATUS[code as ErrorCode], where).toBe(status);
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
