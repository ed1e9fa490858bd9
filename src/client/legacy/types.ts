/* Shapes shared by the legacy files. Names carry an `Lp` prefix because these scripts share one
   global namespace with the DOM typings while being type-checked. */

export interface LpMessage {
  id: number;
  from: string;
  body: unknown;
  createdAt: string;
  /** Absent when the message does not expire. */
  expiresAt?: string;
}

/** A delivery receipt for a message this user published with `receipt: true`. */
export interface LpReceipt {
  id: number;
  to: string;
  status: 'acked';
  at: string;
}

export interface LpSeenSnapshot {
  lowWaterMark?: number;
  ids: number[];
}

export interface LpCheckpoint {
  cursor: number;
  seen: LpSeenSnapshot;
  /** Receipt ids handed over lately; absent until the first. */
  seenReceipts?: LpSeenSnapshot;
}

export interface LpCursorStore {
  load(): LpCheckpoint | number | undefined;
  save(checkpoint: LpCheckpoint): void;
}

export interface LpBackoffOptions {
  minDelayMs?: number;
  maxDelayMs?: number;
  factor?: number;
  jitter?: number;
}

export interface LpResolvedBackoff {
  minDelayMs: number;
  maxDelayMs: number;
  factor: number;
  jitter: number;
}

/** Errors are plain Error objects with these fields, so old engines need no subclassing. */
export interface LpError extends Error {
  code: string;
  retryable: boolean;
  status?: number;
  retryAfterMs?: number;
  cause?: unknown;
}

export interface LpStatus {
  type: 'connected' | 'messages' | 'superseded' | 'retrying' | 'stopped';
  cursor?: number;
  count?: number;
  attempt?: number;
  delayMs?: number;
  reason?: 'stop' | 'error';
  error?: LpError;
}

export interface LpPollerOptions {
  url: string;
  token: string | (() => string);
  onMessages: (messages: LpMessage[], context: { cursor: number }) => void;
  /** Called after onMessages, before the checkpoint is saved; without it receipts are skipped. */
  onReceipts?: (receipts: LpReceipt[], context: { cursor: number }) => void;
  onStatus?: (status: LpStatus) => void;
  wait?: number;
  intervalMs?: number;
  limit?: number;
  cursorStore?: LpCursorStore;
  /** localStorage key for the checkpoint; `false` keeps it in memory. Default: derived from url + token subject. */
  storageKey?: string | false;
  backoff?: LpBackoffOptions;
  dedupWindow?: number;
}

export interface LpPoller {
  start(): void;
  stop(): void;
  getCursor(): number | undefined;
  /** Same as getCursor(), kept up to date for engines without property getters. */
  cursor: number | undefined;
}

export interface LpHttpResult {
  status: number;
  text: string;
  header(name: string): string | null;
}

export interface LpRequestHandle {
  abort(): void;
}

export interface LpPublishOptions {
  url: string;
  token: string | (() => string);
  to: string;
  id?: string;
  body: unknown;
  receipt?: boolean;
  /** Seconds after which the gateway never delivers it. */
  ttl?: number;
  retries?: number;
  backoff?: LpBackoffOptions;
  timeoutMs?: number;
}

export interface LpPublishResult {
  id: number;
  duplicate: boolean;
  clientId: string;
}
