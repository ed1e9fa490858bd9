/* The legacy build's entry (global `LongPoll`, or an AMD / CommonJS module): the same protocol
   logic as the modern client (src/client/core), around XMLHttpRequest and timers, compiled to ES5
   by scripts/build-legacy.mjs. */

import { backoffDelays } from '../core/backoff.js';
import { memoryCursorStore } from '../core/checkpoint.js';
import { newClientMessageId } from '../core/publish-request.js';
import { createLongPoller, createShortPoller } from './poller.js';
import { presence, publish, publishBatch, topicPresence } from './publish.js';
import { globalObject, localStorageCursorStore } from './storage.js';

declare const define: ((dependencies: string[], factory: () => unknown) => void) & { amd?: unknown };
declare const module: { exports?: unknown } | undefined;

const LongPoll = {
  version: '2',
  /**
   * var poller = LongPoll.createLongPoller({ url: '/', token: jwt, topics: { 'room:1': 'now' }, onMessages: function (messages) {} });
   * poller.start();
   * poller.subscribe('room:2', 0);
   */
  createLongPoller: createLongPoller,
  /** Same options plus `intervalMs`; polls with wait=0. Both send `poller.clientId` as `client` with every poll. */
  createShortPoller: createShortPoller,
  /**
   * LongPoll.publish({ url: '/', token: jwt, to: 'bob', id: 'm-1', body: {}, receipt: true }, function (error, result) {});
   * LongPoll.publish({ url: '/', token: jwt, topic: 'room:1', body: {} }, function (error, result) { result.seq; });
   */
  publish: publish,
  /** LongPoll.publishBatch({ url: '/', token: jwt, messages: [{ to: 'bob', body: 1 }] }, function (error, results) {}); */
  publishBatch: publishBatch,
  /** LongPoll.presence({ url: '/', token: jwt, users: ['bob'] }, function (error, result) { result.users.bob.online; }); */
  presence: presence,
  /** LongPoll.topicPresence({ url: '/', token: jwt, topic: 'room:1' }, function (error, result) { result.count; }); */
  topicPresence: topicPresence,
  /** var delayFor = LongPoll.backoffDelays({ minDelayMs: 500 }); delayFor(3); */
  backoffDelays: backoffDelays,
  localStorageCursorStore: localStorageCursorStore,
  memoryCursorStore: memoryCursorStore,
  /** A client message id for publish (not a poller's clientId). */
  newClientId: newClientMessageId,
};

if (typeof define === 'function' && define.amd) {
  define([], function () {
    return LongPoll;
  });
} else if (typeof module === 'object' && module && module.exports) {
  module.exports = LongPoll;
} else {
  globalObject().LongPoll = LongPoll;
}
