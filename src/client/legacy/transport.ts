/* XMLHttpRequest transport. Auth travels as `access_token` in the query and bodies as text/plain
   JSON: both keep cross-origin requests "simple", so old browsers send no preflight. */

import type { LpError, LpHttpResult, LpRequestHandle } from './types.js';
import { lpError } from './util.js';

export var lpRequestCounter = new Date().getTime();

/** Appends the cache buster: old IE serves repeated GETs from its cache otherwise. */
export function lpWithCacheBuster(url: string): string {
  lpRequestCounter += 1;
  return url + (url.indexOf('?') < 0 ? '?' : '&') + '_=' + lpRequestCounter;
}

export function lpNoop(): void {}

export function lpSend(
  method: 'GET' | 'POST',
  url: string,
  body: string | undefined,
  timeoutMs: number,
  done: (error: LpError | null, result?: LpHttpResult) => void,
): LpRequestHandle {
  var xhr = new XMLHttpRequest();
  var finished = false;
  var timer: ReturnType<typeof setTimeout> | undefined;

  function finish(error: LpError | null, result?: LpHttpResult): void {
    if (finished) return;
    finished = true;
    if (timer !== undefined) clearTimeout(timer);
    // Old IE throws when this is set to null.
    xhr.onreadystatechange = lpNoop;
    done(error, result);
  }

  function abortQuietly(): void {
    try {
      xhr.abort();
    } catch (ignored) {
      // Aborting a request that already failed throws in some engines; there is nothing left to do.
    }
  }

  try {
    xhr.open(method, method === 'GET' ? lpWithCacheBuster(url) : url, true);
    if (body !== undefined) xhr.setRequestHeader('Content-Type', 'text/plain;charset=UTF-8');
    xhr.onreadystatechange = function () {
      if (xhr.readyState !== 4) return;
      var status = xhr.status;
      if (!status) {
        finish(lpError('network_error', method + ' ' + url.split('?')[0] + ' failed (no response)', true));
        return;
      }
      finish(null, {
        status: status,
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
      finish(lpError('request_timeout', 'No response within ' + timeoutMs + ' ms', true));
      abortQuietly();
    }, timeoutMs);
    xhr.send(body === undefined ? null : body);
  } catch (error) {
    // Report asynchronously, like every other outcome, so callers never re-enter themselves.
    setTimeout(function () {
      finish(lpError('network_error', 'Could not send ' + method + ' ' + url.split('?')[0] + ': ' + String(error), true, error));
    }, 0);
  }

  return {
    abort: function () {
      if (finished) return;
      finished = true;
      if (timer !== undefined) clearTimeout(timer);
      xhr.onreadystatechange = lpNoop;
      abortQuietly();
    },
  };
}

export function lpIsRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/** Parses a JSON body; undefined when it is empty or not JSON. */
export function lpParseJson(text: string): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch (ignored) {
    return undefined;
  }
}

/** The typed error for a non-2xx answer, keeping the server's stable code and Retry-After. */
export function lpHttpError(result: LpHttpResult): LpError {
  var parsed = lpParseJson(result.text) as { error?: { code?: unknown; message?: unknown } } | undefined;
  var details = parsed && typeof parsed === 'object' ? parsed.error : undefined;
  var code = details && typeof details.code === 'string' ? details.code : 'http_error';
  var message = details && typeof details.message === 'string' ? details.message : 'HTTP ' + result.status;
  var error = lpError(code, message, lpIsRetryableStatus(result.status));
  error.status = result.status;
  var retryAfter = lpParseRetryAfter(result.header('Retry-After'));
  if (retryAfter !== undefined) error.retryAfterMs = retryAfter;
  return error;
}

export function lpParseRetryAfter(value: string | null): number | undefined {
  if (!value) return undefined;
  var trimmed = value.replace(/^\s+|\s+$/g, '');
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(parseFloat(trimmed) * 1000);
  var date = Date.parse(trimmed);
  return isNaN(date) ? undefined : Math.max(0, date - new Date().getTime());
}
