/* publish(options, callback) and publishBatch(options, callback): POST as text/plain JSON,
   retrying transient failures with backoff under the same client ids, which the gateway stores
   only once. */

import { resolveBackoffOptions, retryDelay } from '../core/backoff.js';
import { currentToken, tokenProvider } from '../core/poller-options.js';
import { batchPlan, newClientMessageId, publishPlan, publishRetryOptions, type PublishPlan, type PublishResult } from '../core/publish-request.js';
import { invalid, isObject, queryString, requireFunction } from '../core/validate.js';
import { makeLegacyError } from './errors.js';
import { invokeApplication } from '../core/poll-session.js';
import { baseUrl, send } from './transport.js';
import type { LpError, LpPublishBatchOptions, LpPublishOptions, LpRequestHandle } from './types.js';

type Done<Result> = (error: LpError | null, result?: Result) => void;

export function publish(options: LpPublishOptions, callback: Done<PublishResult>): LpRequestHandle {
  checkOptions(options, callback);
  return post(options, publishPlan(options, newClientMessageId), callback);
}

export function publishBatch(options: LpPublishBatchOptions, callback: Done<PublishResult[]>): LpRequestHandle {
  checkOptions(options, callback);
  return post(options, batchPlan(options.messages, newClientMessageId), callback);
}

function checkOptions(options: unknown, callback: unknown): void {
  if (!isObject(options)) throw invalid('options', 'an object', options);
  requireFunction('callback', callback);
}

function post<Result>(options: LpPublishBatchOptions | LpPublishOptions, plan: PublishPlan<Result>, callback: Done<Result>): LpRequestHandle {
  const url = baseUrl(options.url) + plan.path + '?';
  const token = tokenProvider(options.token);
  const limits = publishRetryOptions(options);
  const backoff = resolveBackoffOptions(options.backoff, 'backoff');
  const body = JSON.stringify(plan.payload);
  let aborted = false;
  let request: LpRequestHandle | null = null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let failures = 0;

  function attempt(): void {
    currentToken(token, invokeApplication, function (tokenUnavailable, accessToken) {
      if (tokenUnavailable) return retryOrFail(makeLegacyError(tokenUnavailable));
      request = send('POST', url + queryString({ access_token: accessToken as string }), body, limits.timeoutMs, function (failure, answer) {
        request = null;
        if (aborted) return;
        if (failure) return retryOrFail(failure);
        const outcome = plan.read(answer!);
        if ('failure' in outcome) return retryOrFail(makeLegacyError(outcome.failure));
        callback(null, outcome.result);
      });
    });
  }

  function retryOrFail(error: LpError): void {
    if (!error.retryable || failures >= limits.retries) return callback(error);
    failures += 1;
    timer = setTimeout(attempt, retryDelay(backoff, failures, error));
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
