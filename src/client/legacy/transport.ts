/* XMLHttpRequest transport. Auth travels as `access_token` in the query and bodies as text/plain
   JSON: both keep cross-origin requests "simple", so old browsers send no preflight. */

import { networkFailure, timeoutFailure, type HttpAnswer } from '../core/failures.js';
import { invalid, isString } from '../core/validate.js';
import { makeLegacyError } from './errors.js';
import type { LpError, LpRequestHandle } from './types.js';

let requestCounter = new Date().getTime();

/** `url` with `query` (`name=value&…`) appended to its query. */
export function withQuery(url: string, query: string): string {
  return url + (url.indexOf('?') < 0 ? '?' : '&') + query;
}

/** Appends the cache buster: old IE serves repeated GETs from its cache otherwise. */
function withCacheBuster(url: string): string {
  requestCounter += 1;
  return withQuery(url, '_=' + requestCounter);
}

function noop(): void {}

/** `base` with a trailing slash, so that 'v1/poll' can be appended. '' means the page's origin root. */
export function baseUrl(value: unknown): string {
  if (!isString(value)) throw invalid('url', 'a string', value);
  if (value === '') return '/';
  return value.charAt(value.length - 1) === '/' ? value : value + '/';
}

/** Sends one request; `done` gets the failure (no answer) or any HTTP answer, always asynchronously. */
export function send(method: 'GET' | 'POST', url: string, body: string | undefined, timeoutMs: number, done: (failure: LpError | null, answer?: HttpAnswer) => void): LpRequestHandle {
  const xhr = new XMLHttpRequest();
  const what = method + ' ' + url.split('?')[0];
  let finished = false;
  let timer: ReturnType<typeof setTimeout> | undefined;

  /** True the first time only: the request is over, whichever way, and nothing else may end it. */
  function settle(): boolean {
    if (finished) return false;
    finished = true;
    if (timer !== undefined) clearTimeout(timer);
    // Old IE throws when this is set to null.
    xhr.onreadystatechange = noop;
    return true;
  }

  function finish(failure: LpError | null, answer?: HttpAnswer): void {
    if (settle()) done(failure, answer);
  }

  function abortQuietly(): void {
    try {
      xhr.abort();
    } catch (ignored) {
      // Aborting a request that already failed throws in some engines; there is nothing left to do.
    }
  }

  try {
    xhr.open(method, method === 'GET' ? withCacheBuster(url) : url, true);
    if (body !== undefined) xhr.setRequestHeader('Content-Type', 'text/plain;charset=UTF-8');
    xhr.onreadystatechange = function () {
      if (xhr.readyState !== 4) return;
      if (!xhr.status) return finish(makeLegacyError(networkFailure(what)));
      finish(null, {
        status: xhr.status,
        text: xhr.responseText || '',
        header: function (name: string) {
          try {
            return xhr.getResponseHeader(name);
          } catch (ignored) {
            return null;
          }
        },
      });
    };
    // A timer instead of xhr.timeout: that property is missing on old engines.
    timer = setTimeout(function () {
      finish(makeLegacyError(timeoutFailure(timeoutMs)));
      abortQuietly();
    }, timeoutMs);
    xhr.send(body === undefined ? null : body);
  } catch (error) {
    // Report asynchronously, like every other outcome, so callers never re-enter themselves.
    setTimeout(function () {
      finish(makeLegacyError(networkFailure(what, error)));
    }, 0);
  }

  return {
    abort: function () {
      if (settle()) abortQuietly();
    },
  };
}
