import type Koa from 'koa';
import { assertScope } from '../auth/publish-policy.js';
import { checkClaims, type TokenClaims, type TokenScope, type VerifyToken } from '../auth/claims.js';
import type { TokenVerifier } from '../auth/tokens.js';
import { GatewayError } from '../errors.js';

export interface AuthState {
  userId: string;
  claims: TokenClaims;
}

/**
 * The scope a /v1 request needs. Everything under /v1/messages publishes (or, later, asks about
 * what the caller published) and needs `publish`; everything else reads or acks the caller's own
 * mailbox and needs `poll`. Deny by default: a route added later needs `poll` unless it is a
 * publishing route, so a publish-only service token never reads a mailbox by accident. Undefined:
 * any scope (the route checks what it needs).
 */
export function scopeForPath(path: string): TokenScope | undefined {
  if (path === '/v1/messages' || path.startsWith('/v1/messages/')) return 'publish';
  // Presence queries decide themselves: a customer's poll token asks about its agents, a
  // publish-only or presence-only service token about its users.
  if (path === '/v1/presence' || (path.startsWith('/v1/topics/') && path.endsWith('/presence'))) return undefined;
  return 'poll';
}

/** Resolves who is calling, or throws a 401 GatewayError: the one thing authentication varies in. */
export type ClaimsResolver = (ctx: Koa.Context) => Promise<TokenClaims>;

type BearerToken = { token: string | undefined; malformed?: 'header' | 'repeated_query' };

/**
 * Bearer token from the Authorization header, or `access_token` in the query for legacy clients
 * (script tags, XDomainRequest) that cannot set headers.
 */
function bearerTokenOf(ctx: Koa.Context): BearerToken {
  const header = ctx.get('Authorization');
  if (header) {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    return match ? { token: match[1] } : { token: undefined, malformed: 'header' };
  }
  const fromQuery = ctx.query.access_token;
  if (Array.isArray(fromQuery)) return { token: undefined, malformed: 'repeated_query' };
  return { token: fromQuery || undefined };
}

/**
 * The gateway's own tokens: a JWT verified by `verifier`, answered with RFC 6750 challenges.
 *
 * @example
 * app.use(authenticate(claimsFromBearerToken(createTokenVerifier({ secret }))));
 */
export function claimsFromBearerToken(verifier: TokenVerifier): ClaimsResolver {
  return async function verifyBearerToken(ctx) {
    const { token, malformed } = bearerTokenOf(ctx);
    if (malformed === 'header') {
      ctx.set('WWW-Authenticate', 'Bearer error="invalid_request"');
      throw new GatewayError('invalid_token', 'The Authorization header must be `Bearer <token>`.');
    }
    if (malformed === 'repeated_query') throw new GatewayError('invalid_token', 'Send `access_token` once.');
    if (!token) {
      ctx.set('WWW-Authenticate', 'Bearer');
      throw new GatewayError('missing_token', 'Send a token as `Authorization: Bearer <token>` or `?access_token=`.');
    }
    try {
      return await verifier.verify(token);
    } catch (error) {
      ctx.set('WWW-Authenticate', 'Bearer error="invalid_token"');
      throw error;
    }
  };
}

/**
 * An embedding application's own sessions: its `verifyToken` hook sees the request's headers (and
 * its bearer token, if any) and names the caller. Its claims are held to the same rules as a
 * JWT's; breaking them is the host's bug, so a 500, not a 401 blaming the client.
 *
 * @example
 * app.use(authenticate(claimsFromHost(async ({ headers }) => sessions.get(cookieOf(headers)) ?? null)));
 */
export function claimsFromHost(verifyToken: VerifyToken): ClaimsResolver {
  return async function verifyHostSession(ctx) {
    const caller = await verifyToken({ method: ctx.method, path: ctx.path, headers: ctx.headers, token: bearerTokenOf(ctx).token });
    if (caller === null || caller === undefined) {
      throw new GatewayError('unauthenticated', 'This request has no session the application accepts.');
    }
    const checked = checkClaims({ subject: caller.subject, pub: caller.pub, scope: caller.scope, topics: caller.topics });
    if ('unusable' in checked) throw new TypeError(`verifyToken returned claims with an unusable \`${checked.unusable}\``);
    return checked;
  };
}

/**
 * Sets `ctx.state.userId` and `ctx.state.claims` from the resolved claims, and refuses a caller
 * whose `scope` lacks what the route needs (403 `forbidden_scope`) before the route reads a byte
 * of the body.
 */
export function authenticate(resolveClaims: ClaimsResolver, options: { scopeFor?: (path: string) => TokenScope | undefined } = {}): Koa.Middleware {
  const scopeFor = options.scopeFor ?? scopeForPath;
  return async function authenticateMiddleware(ctx, next) {
    const claims = await resolveClaims(ctx);
    const scope = scopeFor(ctx.path);
    if (scope !== undefined && !claims.scope.includes(scope)) {
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
