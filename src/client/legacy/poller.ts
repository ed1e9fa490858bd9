/* The legacy shell around the shared poll session: callbacks and timers only. Every asynchronous
   continuation checks the run `generation` it was started in, so nothing scheduled before stop()
   can act after it. */

import { longPollSchedule, resolvePollerOptions, shortPollSchedule } from '../core/poller-options.js';
import { createPollSession, type PollSchedule } from '../core/poll-session.js';
import { queryString } from '../core/validate.js';
import { makeLegacyError } from './errors.js';
import { chooseStore } from './storage.js';
import { baseUrl, send, withQuery } from './transport.js';
import type { LpError, LpPoller, LpPollerOptions, LpRequestHandle, LpStatus } from './types.js';

function createPoller(options: LpPollerOptions, schedule: PollSchedule): LpPoller {
  const shared = resolvePollerOptions(options as Parameters<typeof resolvePollerOptions>[0]);
  const base = baseUrl(options.url);
  const onStatus = shared.onStatus as ((status: LpStatus) => void) | undefined;
  const session = createPollSession<LpError>({
    schedule: schedule,
    options: shared,
    store: chooseStore(options, base, shared.token),
    emit: report,
    make: makeLegacyError,
    active: function () {
      return running && generation === pollGeneration;
    },
  });

  let running = false;
  let generation = 0;
  /** The run the answer being handled belongs to. */
  let pollGeneration = 0;
  let request: LpRequestHandle | null = null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let failures = 0;

  const poller: LpPoller = {
    start: start,
    stop: function () {
      if (running) finish({ type: 'stopped', reason: 'stop' });
    },
    getCursor: session.cursor,
    cursor: undefined,
    // The topics are the session's (through the resolved options); the poll in flight is the shell's.
    subscribe: function (topic, from) {
      shared.topics.subscribe(topic, from);
      resendPoll();
    },
    unsubscribe: function (topic) {
      shared.topics.unsubscribe(topic);
      resendPoll();
    },
  };

  /** A poll in flight is abandoned and sent again at once, so that changed topics apply now. */
  function resendPoll(): void {
    if (!request) return;
    request.abort();
    request = null;
    poll();
  }

  /** Exceptions thrown by the application's status handler must not break the loop's bookkeeping. */
  function report(status: LpStatus): void {
    if (!onStatus) return;
    try {
      onStatus(status);
    } catch (error) {
      // Rethrown outside our stack so it still shows up in the console / error handlers.
      setTimeout(function () {
        throw error;
      }, 0);
    }
  }

  function start(): void {
    if (running) return;
    running = true;
    generation += 1;
    failures = 0;
    session.begin();
    session.load(function (failure) {
      poller.cursor = session.cursor();
      poller.clientId = session.clientId();
      // Reported asynchronously so that start() never calls back before it returns.
      const runGeneration = generation;
      if (failure) later(function () {
        stopOnError(failure);
      }, 0, runGeneration);
      else later(poll, 0, runGeneration);
    });
  }

  function finish(status: LpStatus): void {
    running = false;
    generation += 1;
    if (request) request.abort();
    request = null;
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    report(status);
  }

  function stopOnError(error: LpError): void {
    finish({ type: 'stopped', reason: 'error', error: error });
  }

  /**
   * setTimeout bound to the run that asks for it: nothing is scheduled when that run already
   * ended (stop() from a status handler), and a stop() in between cancels it.
   */
  function later(step: () => void, delayMs: number, runGeneration: number): void {
    if (runGeneration !== generation) return;
    timer = setTimeout(function () {
      timer = undefined;
      if (runGeneration === generation) step();
    }, delayMs);
  }

  function poll(): void {
    const runGeneration = generation;
    pollGeneration = runGeneration;
    session.token(function (tokenFailure, token) {
      if (tokenFailure) return retryAfter(tokenFailure, runGeneration);
      const next = session.pollRequest();
      const url = withQuery(base + next.path, queryString({ access_token: token as string }));
      request = send(next.body ? 'POST' : 'GET', url, JSON.stringify(next.body) as string | undefined, session.timeoutMs(), function (failure, answer) {
        request = null;
        if (runGeneration !== generation) return;
        if (failure) return retryAfter(failure, runGeneration);
        session.takeAnswer(answer!, function (outcome) {
          poller.cursor = session.cursor();
          // stop() may have been called from inside onMessages, onReceipts or onStatus.
          if (runGeneration !== generation || 'halted' in outcome) return;
          if ('again' in outcome) return poll();
          if ('failure' in outcome) {
            if (outcome.failure.retryable) retryAfter(outcome.failure, runGeneration);
            else stopOnError(outcome.failure);
            return;
          }
          failures = 0;
          later(poll, outcome.pauseMs, runGeneration);
        });
      });
    });
  }

  function retryAfter(failure: LpError, runGeneration: number): void {
    failures += 1;
    later(poll, session.retry(failures, failure), runGeneration);
  }

  return poller;
}

export function createLongPoller(options: LpPollerOptions): LpPoller {
  return createPoller(options, longPollSchedule(options));
}

export function createShortPoller(options: LpPollerOptions): LpPoller {
  return createPoller(options, shortPollSchedule(options));
}
