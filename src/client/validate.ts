/**
 * Option checks shared by every client factory. They run once, up front, so a typo surfaces as a
 * precise TypeError at construction time instead of as a strange request minutes later.
 */

export function requireFunction<T>(name: string, value: T): T {
  if (typeof value !== 'function') {
    throw new TypeError(`Expected \`${name}\` to be a function, got ${typeName(value)}`);
  }
  return value;
}

export function requireNonEmptyString(name: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new TypeError(`Expected \`${name}\` to be a non-empty string, got ${typeName(value)}`);
  }
  return value;
}

export function requireNumberInRange(
  name: string,
  value: unknown,
  range: { min: number; max?: number; integer?: boolean; description?: string },
): number {
  const description = range.description ?? describeRange(range);
  const valid =
    typeof value === 'number' &&
    Number.isFinite(value) &&
    value >= range.min &&
    (range.max === undefined || value <= range.max) &&
    (!range.integer || Number.isInteger(value));
  if (!valid) {
    throw new TypeError(`Expected \`${name}\` to be ${description}, got ${typeName(value)}`);
  }
  return value as number;
}

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

function describeRange(range: { min: number; max?: number; integer?: boolean }): string {
  const kind = range.integer ? 'an integer' : 'a number';
  if (range.max !== undefined) return `${kind} from ${range.min} to ${range.max}`;
  if (range.min === 0) return `a non-negative ${range.integer ? 'integer' : 'number'}`;
  return `${kind} >= ${range.min}`;
}

export function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'number') return Number.isNaN(value) ? 'NaN' : String(value);
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  return typeof value;
}
