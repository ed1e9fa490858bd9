import type Koa from 'koa';
import type { TokenVerifier } from '../auth/tokens.js';
import { GatewayError } from '../errors.js';

export interface AuthState {
  userId: string;
}

/**
 * Bearer token from the Authorization header, or `access_token` in the query for legacy clients
 * (script tags, XDomainRequest) that cannot set headers. Sets `ctx.state.userId`.
 */
export function authenticate(verifier: TokenVerifier): Koa.Middleware {
  return async function authenticateMiddleware(ctx, next) {
    const header = ctx.get('Authorization');
    let token: string | undefined;
    if (header) {
      const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
      if (!match) {
        ctx.set('WWW-Authenticate', 'Bearer error="invalid_request"');
        throw new GatewayError('invalid_token', 'The Authorization header must be `Bearer <token>`.', { status: 401 });
      }
      token = match[1];
    } else {
      const fromQuery = ctx.query.access_token;
      if (Array.isArray(fromQuery)) {
        throw new GatewayError('invalid_token', 'Send `access_token` once.', { status: 401 });
      }
      token = fromQuery || undefined;
    }
    if (!token) {
      ctx.set('WWW-Authenticate', 'Bearer');
      throw new GatewayError('missing_token', 'Send a token as `Authorization: Bearer <token>` or `?access_token=`.', {
        status: 401,
      });
    }
    try {
      ctx.state.userId = await verifier.verify(token);
    } catch (error) {
      ctx.set('WWW-Authenticate', 'Bearer error="invalid_token"');
      throw error;
    }
    // Returned, not awaited: this frame then ends here instead of staying suspended for as long
    // as a poll is held (tens of thousands of them; each suspended async frame costs memory).
    return next();
  };
}

/** A caller may name a mailbox explicitly (`user`), but only its own. */
export function assertOwnMailbox(ctx: Koa.Context, requestedUserId: unknown): void {
  if (requestedUserId === undefined) return;
  if (requestedUserId !== ctx.state.userId) {
    throw new GatewayError('forbidden', 'A token may only poll and ack its own mailbox.', { status: 403 });
  }
}
