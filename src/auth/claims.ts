import type { IncomingHttpHeaders } from 'node:http';
import { USER_ID_PATTERN } from '../user-id.js';

/**
 * What a caller may do: `poll` reads and acks its own mailbox, `publish` writes to others',
 * `presence` sees anyone's presence (service tokens).
 */
export type TokenScope = 'poll' | 'publish' | 'presence';
export const TOKEN_SCOPES: readonly TokenScope[] = Object.freeze(['poll', 'publish', 'presence']);
/** What a token without a `scope` claim may do (tokens minted before it existed): never `presence`. */
export const DEFAULT_SCOPES: readonly TokenScope[] = Object.freeze(['poll', 'publish']);

/** The verified claims of a caller, as the HTTP layer uses them (from a JWT or a host's session). */
export interface TokenClaims {
  /** `sub`: the user id — the mailbox the caller polls and the sender of what it publishes. */
  readonly subject: string;
  /**
   * `pub`: the recipients the caller may publish to (exact user ids, `prefix*`, `*` for anyone);
   * undefined when there is no `pub` claim, which leaves the decision to PUBLISH_DEFAULT.
   */
  readonly pub: readonly string[] | undefined;
  /** `scope`: `poll` and `publish` when there is no `scope` claim (tokens minted before it existed). */
  readonly scope: readonly TokenScope[];
  /**
   * `topics`: topic patterns (a name, `prefix*`, `*`) and the rights each grants; undefined when
   * there is no `topics` claim, which grants no topic at all.
   */
  readonly topics: TopicGrants | undefined;
  /**
   * When the token stops being accepted (its `exp` plus the clock tolerance), epoch milliseconds;
   * undefined when it never expires. A connection that outlives its token (a WebSocket) ends then.
   */
  readonly expiresAt?: number;
}

/** What a token may do with a topic: read it, publish to it, see who reads it (presence). */
export type TopicRight = 'read' | 'publish' | 'presence';
export const TOPIC_RIGHTS: readonly TopicRight[] = Object.freeze(['read', 'publish', 'presence']);
/** A `topics` claim: pattern → rights, e.g. `{"room:42": ["read", "publish"], "announce": ["read"]}`. */
export type TopicGrants = Readonly<Record<string, readonly TopicRight[]>>;

/** One pattern of a `topics` claim: a topic name, or a name prefix followed by `*` (`*` alone: every topic). */
export const TOPIC_PATTERN = /^(?:[A-Za-z0-9._:-]{1,128}|[A-Za-z0-9._:-]{0,127}\*)$/;

/** Patterns per `topics` claim; like `pub`, it rides in every request's header. */
export const MAX_TOPIC_GRANTS = 256;

function isTopicRight(value: unknown): value is TopicRight {
  return (TOPIC_RIGHTS as readonly unknown[]).includes(value);
}

/** A checked, frozen `topics` claim, or undefined when it is unusable. */
export function checkTopicGrants(raw: unknown): TopicGrants | undefined {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return undefined;
  const entries = Object.entries(raw as Record<string, unknown>);
  if (entries.length > MAX_TOPIC_GRANTS) return undefined;
  for (const [pattern, rights] of entries) {
    if (!TOPIC_PATTERN.test(pattern) || !Array.isArray(rights) || rights.length === 0 || !rights.every(isTopicRight)) return undefined;
  }
  // fromEntries defines own properties: a topic named `__proto__` is a grant like any other.
  return Object.freeze(Object.fromEntries(entries.map(([pattern, rights]) => [pattern, Object.freeze([...new Set(rights as TopicRight[])])])));
}

export { USER_ID_PATTERN };

/** One entry of a `pub` claim: a user id, or a user id prefix followed by `*` (`*` alone: anyone). */
export const RECIPIENT_PATTERN = /^(?:[A-Za-z0-9._:@-]{1,128}|[A-Za-z0-9._:@-]{0,127}\*)$/;

/**
 * A `pub` claim travels in every request's Authorization header (Node refuses headers over 16 KB),
 * so a longer list is a mistake, not a use case: give such a sender a prefix or `*` instead.
 */
export const MAX_PUB_ENTRIES = 256;

export function isScope(value: unknown): value is TokenScope {
  return (TOKEN_SCOPES as readonly unknown[]).includes(value);
}

/**
 * Checks claims from any source (a JWT's payload, an embedding application's session) and freezes
 * them, or names the first claim that is unusable. A malformed `pub` or `scope` never quietly means
 * "none" or "all": either guess would hand some sender a permission nobody wrote down.
 */
export function checkClaims(raw: {
  subject: unknown;
  pub: unknown;
  scope: readonly unknown[] | undefined;
  topics?: unknown;
  expiresAt?: number | undefined;
}): TokenClaims | { unusable: 'subject' | 'pub' | 'scope' | 'topics' } {
  const { subject, pub, scope } = raw;
  if (typeof subject !== 'string' || !USER_ID_PATTERN.test(subject)) return { unusable: 'subject' };
  if (pub !== undefined && (!Array.isArray(pub) || pub.length > MAX_PUB_ENTRIES || !pub.every((entry) => typeof entry === 'string' && RECIPIENT_PATTERN.test(entry)))) {
    return { unusable: 'pub' };
  }
  if (scope !== undefined && (!Array.isArray(scope) || scope.length === 0 || !scope.every(isScope))) return { unusable: 'scope' };
  const topics = raw.topics === undefined ? undefined : checkTopicGrants(raw.topics);
  if (raw.topics !== undefined && topics === undefined) return { unusable: 'topics' };
  return Object.freeze({
    subject,
    pub: pub === undefined ? undefined : Object.freeze([...(pub as string[])]),
    scope: scope === undefined ? DEFAULT_SCOPES : Object.freeze([...new Set(scope as TokenScope[])]),
    topics,
    ...(raw.expiresAt !== undefined ? { expiresAt: raw.expiresAt } : {}),
  });
}

/** What an embedding application's `verifyToken` hook is told about a request to the API. */
export interface AuthRequest {
  readonly method: string;
  /** The path as the gateway sees it: under `/v1`, after any prefix the host stripped. */
  readonly path: string;
  /** The request's headers, cookies included: a host can look up its own session. */
  readonly headers: IncomingHttpHeaders;
  /** The token of `Authorization: Bearer <token>` or `?access_token=`, when the request has one. */
  readonly token: string | undefined;
}

/** The caller a `verifyToken` hook vouches for; `pub`, `scope` and `topics` mean what the JWT claims mean. */
export interface CallerClaims {
  subject: string;
  pub?: readonly string[] | undefined;
  scope?: readonly TokenScope[] | undefined;
  topics?: TopicGrants | undefined;
}

/**
 * Authenticates API requests with the embedding application's own sessions instead of the
 * gateway's JWTs. Resolves the caller, or null when the request has no session (a 401
 * `unauthenticated`); a GatewayError it throws (e.g. `invalid_token`) is answered as is, any other
 * error is a logged 500.
 */
export type VerifyToken = (request: AuthRequest) => Promise<CallerClaims | null | undefined> | CallerClaims | null | undefined;
