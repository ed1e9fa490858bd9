import { protocolFailure, successBody, type FailureSpec, type HttpAnswer } from './failures.js';

/**
 * One request of the helpers beside the pollers (publish, publishBatch, presence, topicPresence),
 * for both builds: where it goes, what it sends and how its answer reads. The shells send it and
 * retry its transient failures (p-retry, or timers).
 */
export interface RequestPlan<Result> {
  /** Relative to the gateway's base URL, query included. */
  path: string;
  /** Sent as JSON in a POST; the request is a GET without it. */
  payload?: unknown;
  /** The result, or the failure (retryable or not) the answer stands for. */
  read(answer: HttpAnswer): { result: Result } | { failure: FailureSpec };
}

/** The fields of a JSON body (none when it is not an object). */
export type JsonFields = { [field: string]: unknown };

/**
 * Reads a 2xx answer's JSON body with `check`, which returns the result, or undefined when the
 * body is not what the API promises: then an `invalid_response` ("Expected " + `expected`),
 * retried like a proxy's page. A non-2xx answer is the failure it stands for.
 */
export function readJson<Result>(check: (body: JsonFields) => Result | undefined, expected: string): RequestPlan<Result>['read'] {
  return function (answer) {
    const parsed = successBody(answer);
    if ('failure' in parsed) return parsed;
    const result = check((parsed.body || {}) as JsonFields);
    return result === undefined ? { failure: protocolFailure('Expected ' + expected) } : { result: result };
  };
}
