/* Small helpers written against ES5 only. */

import type { LpError, LpStatus } from './types.js';

export function lpError(code: string, message: string, retryable: boolean, cause?: unknown): LpError {
  var error = new Error(message) as LpError;
  error.name = 'LongPollError';
  error.code = code;
  error.retryable = retryable;
  if (cause !== undefined) error.cause = cause;
  return error;
}

export function lpIsArray(value: unknown): value is unknown[] {
  return Object.prototype.toString.call(value) === '[object Array]';
}

export function lpIsFiniteNumber(value: unknown): value is number {
  return typeof value === 'number' && isFinite(value);
}

export function lpDescribe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'string') return '"' + value + '"';
  if (typeof value === 'number') return String(value);
  return typeof value;
}

/** Returns `value`, or `fallback` when undefined, after checking it is a number in range. */
export function lpNumberOption(name: string, value: unknown, fallback: number, min: number, max?: number, integer?: boolean): number {
  var resolved = value === undefined ? fallback : value;
  var valid =
    lpIsFiniteNumber(resolved) &&
    resolved >= min &&
    (max === undefined || resolved <= max) &&
    (!integer || Math.floor(resolved) === resolved);
  if (!valid) {
    var kind = integer ? 'integer' : 'number';
    var expected =
      max !== undefined ? 'a' + (integer ? 'n ' : ' ') + kind + ' from ' + min + ' to ' + max : min === 0 ? 'a non-negative ' + kind : 'a' + (integer ? 'n ' : ' ') + kind + ' >= ' + min;
    throw new TypeError('Expected `' + name + '` to be ' + expected + ', got ' + lpDescribe(resolved));
  }
  return resolved as number;
}

export function lpRequireFunction(name: string, value: unknown): void {
  if (typeof value !== 'function') {
    throw new TypeError('Expected `' + name + '` to be a function, got ' + lpDescribe(value));
  }
}

export function lpTokenProvider(value: unknown): () => string {
  if (typeof value === 'function') return value as () => string;
  if (typeof value !== 'string' || value.length === 0) {
    throw new TypeError('Expected `token` to be a non-empty string or a function, got ' + lpDescribe(value));
  }
  return function () {
    return value;
  };
}

/** Base URL with a trailing slash, so that 'v1/poll' can be appended. '' means the page's origin root. */
export function lpBaseUrl(value: unknown): string {
  if (typeof value !== 'string') throw new TypeError('Expected `url` to be a string, got ' + lpDescribe(value));
  if (value === '') return '/';
  return value.charAt(value.length - 1) === '/' ? value : value + '/';
}

export function lpQuery(params: { [name: string]: string | number }): string {
  var parts: string[] = [];
  for (var name in params) {
    if (Object.prototype.hasOwnProperty.call(params, name)) {
      parts.push(encodeURIComponent(name) + '=' + encodeURIComponent(String(params[name])));
    }
  }
  return parts.join('&');
}

/** Exceptions thrown by application callbacks must not break the client's own bookkeeping. */
export function lpCallSafely(callback: ((value: LpStatus) => void) | undefined, value: LpStatus): void {
  if (!callback) return;
  try {
    callback(value);
  } catch (error) {
    // Rethrown outside our stack so it still shows up in the console / error handlers.
    setTimeout(function () {
      throw error;
    }, 0);
  }
}

export var lpRandomIdCounter = 0;

export function lpNewClientId(): string {
  lpRandomIdCounter += 1;
  return (
    new Date().getTime().toString(36) +
    '-' +
    Math.random().toString(36).slice(2, 10) +
    Math.random().toString(36).slice(2, 10) +
    '-' +
    lpRandomIdCounter
  );
}
