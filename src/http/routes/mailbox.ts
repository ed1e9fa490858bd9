import type Router from '@koa/router';
import type { Engine } from '../../core/engine.js';
import { setNoCacheHeaders } from './poll.js';

/**
 * GET /v1/mailbox: `{pending, oldestAt}` for the caller, for badges. Unacked, unexpired messages
 * only; one index range of the caller's pending rows, cheap enough for every page load.
 */
export function registerMailboxRoutes(router: Router, engine: Engine): void {
  router.get('/v1/mailbox', async function summariseMailbox(ctx) {
    const summary = await engine.mailboxSummary(ctx.state.userId);
    setNoCacheHeaders(ctx);
    ctx.body = { pending: summary.pending, oldestAt: summary.oldestAt === null ? null : new Date(summary.oldestAt).toISOString() };
  });
}
