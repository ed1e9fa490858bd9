/* The public surface, returned by the UMD wrapper as `LongPoll`. */

import { lpBackoffDelays } from './backoff.js';
import { lpLocalStorageCursorStore, lpMemoryCursorStore } from './cursor-store.js';
import { lpCreateLongPoller, lpCreateShortPoller } from './poller.js';
import { lpPublish } from './publish.js';
import { lpNewClientId } from './util.js';

export var lpExports = {
  version: '1',
  /**
   * var poller = LongPoll.createLongPoller({ url: '/', token: jwt, onMessages: function (messages) {} });
   * poller.start();
   */
  createLongPoller: lpCreateLongPoller,
  /** Same options plus `intervalMs`; polls with wait=0. */
  createShortPoller: lpCreateShortPoller,
  /** LongPoll.publish({ url: '/', token: jwt, to: 'bob', id: 'm-1', body: {}, receipt: true }, function (error, result) {}); */
  publish: lpPublish,
  /** var delayFor = LongPoll.backoffDelays({ minDelayMs: 500 }); delayFor(3); */
  backoffDelays: lpBackoffDelays,
  localStorageCursorStore: lpLocalStorageCursorStore,
  memoryCursorStore: lpMemoryCursorStore,
  newClientId: lpNewClientId,
};
