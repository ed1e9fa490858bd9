/**
 * Option checks shared by every client factory, modern and legacy. They run once, up front, so a
 * typo surfaces as a precise TypeError at construction time instead of as a strange request
 * minutes later. Written against ES5 (no Number.isInteger, no String#includes): the legacy bundle
 * runs this very code.
 */

export function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'number') return value !== value ? 'NaN' : String(value);
  if (isString(value)) return JSON.stringify(value.length > 40 ? value.slice(0, 40) + '...' : value);
  return typeof value;
}

export function isString(value: unknown): value is string {
  return typeof value === 'string';
}

/** An object (arrays included), not null. */
export function isObject(value: unknown): value is object {
  return typeof value === 'object' && value !== null;
}

export function isArray(value: unknown): value is unknown[] {
  // Array.isArray is missing before IE9.
  return Object.prototype.toString.call(value) === '[object Array]';
}

/** An array whose every item passes `test`. */
export function isArrayOf(value: unknown, test: (item: unknown) => boolean): value is unknown[] {
  if (!isArray(value)) return false;
  for (let index = 0; index < value.length; index++) if (!test(value[index])) return false;
  return true;
}

export function hasOwn(target: object, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(target, key);
}

export function isFiniteNumber(value: unknown): value is number {
  return typeof value === 'number' && isFinite(value);
}

export function isWholeNumber(value: unknown): value is number {
  return isFiniteNumber(value) && Math.floor(value) === value;
}

/** The TypeError every option check throws: "Expected `name` to be …, got …". */
export function invalid(name: string, expected: string, value: unknown): TypeError {
  return new TypeError('Expected `' + name + '` to be ' + expected + ', got ' + typeName(value));
}

export function requireFunction<T>(name: string, value: T): T {
  if (typeof value !== 'function') throw invalid(name, 'a function', value);
  return value;
}

/** An optional callback: undefined, or checked to be a function. */
export function optionalFunction<T>(name: string, value: T): T | undefined {
  return value === undefined ? undefined : requireFunction(name, value);
}

export function requireNonEmptyString(name: string, value: unknown): string {
  if (!isString(value) || !value) throw invalid(name, 'a non-empty string', value);
  return value;
}

/** A string `pattern` matches (a topic name, a user id): "Expected `name` to be `what` matching /…/" otherwise. */
export function requireMatch(name: string, value: unknown, pattern: RegExp, what: string): string {
  if (!isString(value) || !pattern.test(value)) throw invalid(name, what + ' matching ' + String(pattern), value);
  return value;
}

export interface NumberRange {
  min: number;
  max?: number;
  integer?: boolean;
  description?: string;
}

export function requireNumberInRange(name: string, value: unknown, range: NumberRange): number {
  const valid =
    isFiniteNumber(value) && value >= range.min && (range.max === undefined || value <= range.max) && (!range.integer || isWholeNumber(value));
  if (!valid) throw invalid(name, range.description || describeRange(range), value);
  return value as number;
}

/** `value` checked against `range`, or `fallback` when it is undefined. */
export function numberOption(name: string, value: unknown, fallback: number, range: NumberRange): number {
  return requireNumberInRange(name, value === undefined ? fallback : value, range);
}

function describeRange(range: NumberRange): string {
  const kind = range.integer ? 'an integer' : 'a number';
  if (range.max !== undefined) return kind + ' from ' + range.min + ' to ' + range.max;
  if (range.min === 0) return 'a non-negative ' + (range.integer ? 'integer' : 'number');
  return kind + ' >= ' + range.min;
}

/** `name=value` pairs joined with `&`, in the order given. */
export function queryString(params: { [name: string]: unknown }): string {
  const parts: string[] = [];
  for (const name in params) {
    if (hasOwn(params, name)) parts.push(encodeURIComponent(name) + '=' + encodeURIComponent(String(params[name])));
  }
  return parts.join('&');
}

/** Parses a JSON text; undefined when it is empty or not JSON. */
export function parseJsonLeniently(text: string): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch (ignored) {
    return undefined;
  }
}

export function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
