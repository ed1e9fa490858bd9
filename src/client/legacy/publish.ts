/* publish(options, callback): POSTs one message as text/plain JSON, retrying transient failures
   with backoff under the same client id, which the gateway stores only once. */

import { lpBackoffDelay, lpResolveBackoff } from './backoff.js';
import { lpHttpError, lpParseJson, lpSend } from './transport.js';
import type { LpError, LpHttpResult, LpPublishOptions, LpPublishResult, LpRequestHandle } from './types.js';
import { lpBaseUrl, lpDescribe, lpError, lpIsFiniteNumber, lpNewClientId, lpNumberOption, lpQuery, lpRequireFunction, lpTokenProvider } from './util.js';

export function lpPublish(options: LpPublishOptions, callback: (error: LpError | null, result?: LpPublishResult) => void): LpRequestHandle {
  if (!options || typeof options !== 'object') throw new TypeError('Expected publish options to be an object');
  lpRequireFunction('callback', callback);
  var baseUrl = lpBaseUrl(options.url);
  var tokenFor = lpTokenProvider(options.token);
  if (typeof options.to !== 'string' || !/^[A-Za-z0-9._:@-]{1,128}$/.test(options.to)) {
    throw new TypeError('Expected `to` to be a user id (letters, digits, . _ : @ -; at most 128), got ' + lpDescribe(options.to));
  }
  var clientId = options.id === undefined ? lpNewClientId() : options.id;
  if (typeof clientId !== 'string' || !clientId || clientId.length > 128) {
    throw new TypeError('Expected `id` to be a non-empty string of at most 128 characters, got ' + lpDescribe(clientId));
  }
  if (options.body === undefined) throw new TypeError('Expected `body` to be a JSON value, got undefined');
  var retries = lpNumberOption('retries', options.retries, 4, 0, undefined, true);
  var timeoutMs = lpNumberOption('timeoutMs', options.timeoutMs, 30000, 1);
  var backoff = lpResolveBackoff(options.backoff, 'backoff.');
  if (options.receipt !== undefined && typeof options.receipt !== 'boolean') {
    throw new TypeError('Expected `receipt` to be a boolean, got ' + lpDescribe(options.receipt));
  }
  if (options.ttl !== undefined && !(typeof options.ttl === 'number' && options.ttl >= 1 && Math.floor(options.ttl) === options.ttl)) {
    throw new TypeError('Expected `ttl` to be a positive whole number of seconds, got ' + lpDescribe(options.ttl));
  }
  // `receipt` and `ttl` only when asked for, so older gateways keep accepting plain publishes.
  var message: { to: string; id: string; body: unknown; receipt?: boolean; ttl?: number } = { to: options.to, id: clientId, body: options.body };
  if (options.receipt) message.receipt = true;
  if (options.ttl !== undefined) message.ttl = options.ttl;
  var payload = JSON.stringify(message);

  var aborted = false;
  var request: LpRequestHandle | null = null;
  var timer: ReturnType<typeof setTimeout> | undefined;
  var failures = 0;

  function attempt(): void {
    var url = baseUrl + 'v1/messages?' + lpQuery({ access_token: tokenFor() });
    request = lpSend('POST', url, payload, timeoutMs, function (error, result) {
      request = null;
      if (aborted) return;
      if (error) return retryOrFail(error);
      var response = result as LpHttpResult;
      if (response.status < 200 || response.status > 299) return retryOrFail(lpHttpError(response));
      var body = lpParseJson(response.text) as { id?: unknown; duplicate?: unknown } | undefined;
      if (!body || !lpIsFiniteNumber(body.id)) {
        return retryOrFail(lpError('invalid_response', 'Expected a numeric `id` in the publish response', true));
      }
      callback(null, { id: body.id, duplicate: body.duplicate === true, clientId: clientId });
    });
  }

  function retryOrFail(error: LpError): void {
    if (!error.retryable || failures >= retries) {
      callback(error);
      return;
    }
    failures += 1;
    timer = setTimeout(attempt, Math.max(lpBackoffDelay(backoff, failures), error.retryAfterMs || 0));
  }

  attempt();
  return {
    abort: function () {
      aborted = true;
      if (timer !== undefined) clearTimeout(timer);
      if (request) request.abort();
    },
  };
}
