import type Koa from 'koa';
import { assertScope } from '../auth/publish-policy.js';
import type { TokenClaims, TokenScope, TokenVerifier } from '../auth/tokens.js';
import { GatewayError } from '../errors.js';

export interface AuthState {
  userId: string;
  claims: TokenClaims;
}

/**
 * The scope a /v1 request needs. Everything under /v1/messages publishes (or, later, asks about
 * what the caller published) and needs `publish`; everything else reads or acks the caller's own
 * mailbox and needs `poll`. Deny by default: a route added later needs `poll` unless it is a
 * publishing route, so a publish-only service token never reads a mailbox by accident.
 */
export function scopeForPath(path: string): TokenScope {
  return path === '/v1/messages' || path.startsWith('/v1/messages/') ? 'publish' : 'poll';
}

/**
 * Bearer token from the Authorization header, or `access_token` in the query for legacy clients
 * (script tags, XDomainRequest) that cannot set headers. Sets `ctx.state.userId` and
 * `ctx.state.claims`, and refuses a token whose `scope` lacks what the route needs (403
 * `forbidden_scope`) before the route reads a byte of the body.
 */
export function authenticate(verifier: TokenVerifier, options: { scopeFor?: (path: string) => TokenScope } = {}): Koa.Middleware {
  const scopeFor = options.scopeFor ?? scopeForPath;
  return async function authenticateMiddleware(ctx, next) {
    const header = ctx.get('Authorization');
    let token: string | undefined;
    if (header) {
      const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
      if (!match) {
        ctx.set('WWW-Authenticate', 'Bearer error="invalid_request"');
        throw new GatewayError('invalid_token', 'The Authorization header must be `Bearer <token>`.');
      }
      token = match[1];
    } else {
      const fromQuery = ctx.query.access_token;
      if (Array.isArray(fromQuery)) {
        throw new GatewayError('invalid_token', 'Send `access_token` once.');
      }
      token = fromQuery || undefined;
    }
    if (!token) {
      ctx.set('WWW-Authenticate', 'Bearer');
      throw new GatewayError('missing_token', 'Send a token as `Authorization: Bearer <token>` or `?access_token=`.');
    }
    let claims: TokenClaims;
    try {
      claims = await verifier.verify(token);
    } catch (error) {
      ctx.set('WWW-Authenticate', 'Bearer error="invalid_token"');
      throw error;
    }
    const scope = scopeFor(ctx.path);
    if (!claims.scope.includes(scope)) {
      // RFC 6750 §3.1: the 403 for a token that is valid but not allowed to do this.
      ctx.set('WWW-Authenticate', `Bearer error="insufficient_scope", scope="${scope}"`);
      assertScope(claims, scope);
    }
    ctx.state.userId = claims.subject;
    ctx.state.claims = claims;
    // Returned, not awaited: this frame then ends here instead of staying suspended for as long
    // as a poll is held (tens of thousands of them; each suspended async frame costs memory).
    return next();
  };
}

/** A caller may name a mailbox explicitly (`user`), but only its own. */
export function assertOwnMailbox(ctx: Koa.Context, requestedUserId: unknown): void {
  if (requestedUserId === undefined) return;
  if (requestedUserId !== ctx.state.userId) {
    throw new GatewayError('forbidden', 'A token may only poll and ack its own mailbox.');
  }
}
