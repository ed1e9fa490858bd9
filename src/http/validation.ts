import type Koa from 'koa';
import { z } from 'zod';
import { USER_ID_PATTERN } from '../auth/tokens.js';
import type { ErrorCode } from '../error-codes.js';
import { GatewayError } from '../errors.js';

export const userIdSchema = z.string().regex(USER_ID_PATTERN, 'must be 1-128 characters of A-Z a-z 0-9 . _ : @ -');

/** Turns a zod failure into a stable 400: unknown fields get their own code, everything else `invalid_request`. */
export function parseOrThrow<T>(schema: z.ZodType<T>, value: unknown): T {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  if (issue.code === 'unrecognized_keys') {
    throw new GatewayError('unknown_field', `Unknown field(s): ${issue.keys.map((key) => JSON.stringify(key)).join(', ')}.`);
  }
  const where = issue.path.length > 0 ? `\`${issue.path.join('.')}\`` : 'body';
  throw new GatewayError('invalid_request', `${where}: ${issue.message}`);
}

function singleQueryValue(ctx: Koa.Context, name: string, code: ErrorCode): string | undefined {
  const value = ctx.query[name];
  if (Array.isArray(value)) throw new GatewayError(code, `Send \`${name}\` at most once.`);
  return value;
}

/** A non-negative integer query parameter within [min, max], or the fallback when absent. */
export function integerQuery(
  ctx: Koa.Context,
  name: string,
  { min, max, fallback, code }: { min: number; max: number; fallback: number; code: ErrorCode },
): number {
  const raw = singleQueryValue(ctx, name, code);
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d{1,16}$/.test(raw)) {
    throw new GatewayError(code, `\`${name}\` must be an integer between ${min} and ${max}.`);
  }
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new GatewayError(code, `\`${name}\` must be an integer between ${min} and ${max}.`);
  }
  return value;
}

export function optionalStringQuery(ctx: Koa.Context, name: string, code: ErrorCode): string | undefined {
  return singleQueryValue(ctx, name, code);
}

export const cursorSchema = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
