/* The helpers beside the pollers, callback style. publish(options, callback) and
   publishBatch(options, callback) POST as text/plain JSON, retrying transient failures with backoff
   under the same client ids, which the gateway stores only once; presence(options, callback) and
   topicPresence(options, callback) are GETs, retried the same way. */

import { resolveBackoffOptions, retryDelay } from '../core/backoff.js';
import { currentToken, tokenProvider } from '../core/poller-options.js';
import { presencePlan, topicPresencePlan, type PresenceResult, type TopicPresenceResult } from '../core/presence-request.js';
import { batchPlan, publishPlan, publishRetryOptions, type PublishResult } from '../core/publish-request.js';
import type { RequestPlan } from '../core/request-plan.js';
import { invalid, isObject, queryString, requireFunction } from '../core/validate.js';
import { makeLegacyError } from './errors.js';
import { invokeApplication } from '../core/poll-session.js';
import { baseUrl, send, withQuery } from './transport.js';
import type { LpError, LpPresenceOptions, LpPublishBatchOptions, LpPublishOptions, LpPublishTransport, LpRequestHandle, LpTopicPresenceOptions } from './types.js';

type Done<Result> = (error: LpError | null, result?: Result) => void;

/** A helper of this build, `(options, callback)`: checks both, then sends the request `plan` makes of the options. */
function callbackHelper<Options extends LpPublishTransport, Result>(plan: (options: Options) => RequestPlan<Result>) {
  return function (options: Options, callback: Done<Result>): LpRequestHandle {
    if (!isObject(options)) throw invalid('options', 'an object', options);
    requireFunction('callback', callback);
    return sendWithRetries(options, plan(options), callback);
  };
}

/* Each plan checks its options before anything is sent (and publish makes up missing client ids). */
export const publish = callbackHelper<LpPublishOptions, PublishResult>(publishPlan);
export const publishBatch = callbackHelper<LpPublishBatchOptions, PublishResult[]>(batchPlan);
export const presence = callbackHelper<LpPresenceOptions, PresenceResult>(presencePlan);
export const topicPresence = callbackHelper<LpTopicPresenceOptions, TopicPresenceResult>(topicPresencePlan);

/** Sends the plan's request (a POST of its payload, or a GET), retrying transient failures. */
function sendWithRetries<Result>(options: LpPublishTransport, plan: RequestPlan<Result>, callback: Done<Result>): LpRequestHandle {
  const url = baseUrl(options.url) + plan.path;
  const token = tokenProvider(options.token);
  const limits = publishRetryOptions(options);
  const backoff = resolveBackoffOptions(options.backoff, 'backoff');
  // undefined without a payload (JSON.stringify(undefined)): a GET.
  const body = JSON.stringify(plan.payload) as string | undefined;
  let aborted = false;
  let request: LpRequestHandle | null = null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let failures = 0;

  function attempt(): void {
    currentToken(token, invokeApplication, function (tokenUnavailable, accessToken) {
      if (tokenUnavailable) return retryOrFail(makeLegacyError(tokenUnavailable));
      request = send(body ? 'POST' : 'GET', withQuery(url, queryString({ access_token: accessToken as string })), body, limits.timeoutMs, function (failure, answer) {
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
