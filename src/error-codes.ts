/**
 * Every error code the gateway answers with, and the HTTP status it always comes with. The one
 * source for both: GatewayError takes its status from here, the docs test checks the README and
 * openapi.yaml against it, and the browser clients can type-import it. Kept free of imports and of
 * anything newer than ES5 (no Map, Set or spread) so the legacy client bundle can include it as is.
 *
 * @example
 * const status = ERROR_STATUS[body.error.code as ErrorCode]; // e.g. 403 for 'forbidden_recipient'
 */
export const ERROR_STATUS = {
  // 400: the request itself is malformed.
  invalid_json: 400,
  invalid_body: 400,
  invalid_request: 400,
  unknown_field: 400,
  invalid_cursor: 400,
  /** A topic name that does not match ^[A-Za-z0-9._:-]{1,128}$. */
  invalid_topic: 400,
  /** More topics in one poll than POLL_TOPICS_MAX. */
  too_many_topics: 400,
  /** More than 100 users in one presence query. */
  too_many_users: 400,
  invalid_wait: 400,
  invalid_limit: 400,
  invalid_ttl: 400,
  invalid_callback: 400,
  invalid_method_override: 400,
  /** A user id that does not match ^[A-Za-z0-9._:@-]{1,128}$ (a presence query, the `token` command). */
  invalid_user_id: 400,
  // 401: who is asking is unknown.
  missing_token: 401,
  invalid_token: 401,
  token_expired: 401,
  /** An embedding application's verifyToken hook found no session on the request. */
  unauthenticated: 401,
  // 403: known, but not allowed to do this.
  forbidden: 403,
  forbidden_scope: 403,
  forbidden_recipient: 403,
  forbidden_topic: 403,
  /** A presence query about a user the token may not publish to, without the `presence` scope. */
  forbidden_presence: 403,
  not_found: 404,
  method_not_allowed: 405,
  idempotency_conflict: 409,
  payload_too_large: 413,
  message_too_large: 413,
  unsupported_media_type: 415,
  rate_limited: 429,
  internal_error: 500,
  too_many_polls: 503,
  store_unavailable: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;
