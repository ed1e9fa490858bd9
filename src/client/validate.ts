/**
 * Checks for the options only the modern client has (URL objects, AbortSignal); the shared ones
 * live in core/validate.ts.
 */
import { requireNonEmptyString, typeName } from './core/validate.js';

/** Accepts `string | URL` and returns a URL whose path ends in `/`, so endpoint paths resolve below it. */
export function parseBaseUrl(name: string, value: unknown): URL {
  let parsed: URL;
  try {
    parsed = new URL(value instanceof URL ? value.href : requireNonEmptyString(name, value));
  } catch (error) {
    if (error instanceof TypeError && error.message.startsWith('Expected')) throw error;
    throw new TypeError(`Expected \`${name}\` to be an absolute http(s) URL, got ${JSON.stringify(String(value))}`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new TypeError(`Expected \`${name}\` to be an absolute http(s) URL, got ${JSON.stringify(String(value))}`);
  }
  parsed.search = '';
  parsed.hash = '';
  if (!parsed.pathname.endsWith('/')) parsed.pathname += '/';
  return parsed;
}

export function requireAbortSignal(name: string, value: unknown): AbortSignal | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'object' || value === null || typeof (value as AbortSignal).addEventListener !== 'function' || !('aborted' in value)) {
    throw new TypeError(`Expected \`${name}\` to be an AbortSignal, got ${typeName(value)}`);
  }
  return value as AbortSignal;
}

/** The `fetch` option, or the global one. */
export function resolveFetch<F>(value: F | undefined): F {
  const found = value ?? (globalThis.fetch as F | undefined);
  if (typeof found !== 'function') throw new TypeError('Expected `fetch` to be a function (no global fetch in this environment; pass one in)');
  return found;
}
