import vm from 'node:vm';
import { expect } from 'vitest';
import type { createFakeGateway } from './fake-gateway.js';
import { createFakeXhrClass, type XhrRecord } from './fake-xhr.js';
import { ensureLegacyBundle } from './legacy-bundle.js';

/** Everything an old browser lacks; removed from the context before the bundle is evaluated. */
const MODERN_GLOBALS = ['Promise', 'Map', 'Set', 'WeakMap', 'WeakSet', 'Symbol', 'Proxy', 'Reflect', 'fetch', 'WebSocket', 'EventSource', 'AbortController', 'queueMicrotask'];
const MODERN_METHODS = ['Object.assign', 'Object.entries', 'Array.from', 'Array.of', 'Array.prototype.find', 'Array.prototype.includes', 'String.prototype.startsWith', 'String.prototype.includes', 'Number.isInteger'];

export type Checkpoint = { cursor: number; clientId?: string; seen: { ids: number[]; lowWaterMark?: number }; seenReceipts?: { ids: number[] }; topics?: Record<string, number> };
export interface LegacyPoller {
  start(): void;
  stop(): void;
  getCursor(): number | undefined;
  cursor: number | undefined;
  clientId: string | undefined;
  subscribe(topic: string, from: number | 'now'): void;
  unsubscribe(topic: string): void;
}
type Callback = (error: { code: string; status?: number; retryable: boolean } | null, result?: unknown) => void;
export interface LegacyApi {
  createLongPoller(options: object): LegacyPoller;
  createShortPoller(options: object): LegacyPoller;
  publish(options: object, callback: Callback): { abort(): void };
  publishBatch(options: object, callback: Callback): { abort(): void };
  presence(options: object, callback: Callback): { abort(): void };
  topicPresence(options: object, callback: Callback): { abort(): void };
  backoffDelays(options: object, random?: () => number): (attempt: number) => number;
  memoryCursorStore(initial?: Checkpoint | number): { load(): Checkpoint | undefined; save(checkpoint: Checkpoint): void };
  localStorageCursorStore(key: string): { load(): Checkpoint | undefined; save(checkpoint: Checkpoint): void };
}

/** A token whose payload has `sub` (the legacy client derives its default storage key from it). */
export function fakeJwt(sub: string): string {
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part({ alg: 'HS256' })}.${part({ sub })}.signature`;
}

/**
 * Evaluates the legacy bundle in a fresh VM context without Promise, fetch, Map, Set and the other
 * ES2015+ globals, with an XMLHttpRequest that talks to `gateway` (the fake one, or `{ fetch }` for
 * a real gateway) and a localStorage over `storage` (share `storage` between two calls to simulate
 * a page reload).
 */
export function loadLegacyClient(gateway: Pick<ReturnType<typeof createFakeGateway>, 'fetch'>, storage = new Map<string, string>()) {
  const requests: XhrRecord[] = [];
  const localStorage = { getItem: (key: string) => storage.get(key) ?? null, setItem: (key: string, value: string) => void storage.set(key, value) };
  const context = vm.createContext({ XMLHttpRequest: createFakeXhrClass(gateway.fetch, requests), setTimeout, clearTimeout, localStorage });
  vm.runInContext(
    `${JSON.stringify(MODERN_GLOBALS)}.forEach(function (name) { delete globalThis[name]; });
     ${JSON.stringify(MODERN_METHODS)}.forEach(function (path) {
       var parts = path.split('.'); var owner = globalThis;
       for (var i = 0; i < parts.length - 1; i++) owner = owner[parts[i]];
       delete owner[parts[parts.length - 1]];
     });`,
    context,
  );
  const missing = vm.runInContext(`[typeof Promise, typeof Map, typeof Set, typeof fetch, typeof WebSocket, typeof EventSource, typeof Object.assign].join()`, context);
  expect(missing).toBe('undefined,undefined,undefined,undefined,undefined,undefined,undefined');
  vm.runInContext(ensureLegacyBundle(), context, { filename: 'longpoll.legacy.js' });
  const LongPoll = (context as { LongPoll?: LegacyApi }).LongPoll;
  expect(LongPoll, 'the bundle defines the LongPoll global').toBeDefined();
  return { LongPoll: LongPoll!, requests, storage };
}

/** Copies values out of the VM realm so that assertions compare plain objects. */
export const plain = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;
