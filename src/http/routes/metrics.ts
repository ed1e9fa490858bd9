import { createHash, timingSafeEqual } from 'node:crypto';
import type Router from '@koa/router';
import { GatewayError } from '../../errors.js';

/** The scrape side of the metrics registry; the HTTP layer needs nothing else from it. */
export interface MetricsEndpoint {
  readonly contentType: string;
  render(): Promise<string>;
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/**
 * GET /metrics in the Prometheus text format. With a token configured, scrapers must send
 * `Authorization: Bearer <token>`; compared in constant time (over digests, so the length of the
 * token does not leak either). No `?access_token=` here: scrape URLs end up in config and logs.
 */
export function registerMetricsRoute(router: Router, metrics: MetricsEndpoint, token: string | undefined): void {
  const expected = token === undefined ? undefined : digest(token);
  router.get('/metrics', async function renderMetrics(ctx) {
    if (expected) {
      const match = /^Bearer ([^\s]+)$/.exec(ctx.get('Authorization'));
      if (!match) throw new GatewayError('missing_token', 'Send the metrics token as `Authorization: Bearer <token>`.');
      if (!timingSafeEqual(digest(match[1]!), expected)) throw new GatewayError('invalid_token', 'The metrics token is not valid.');
    }
    ctx.set('Cache-Control', 'no-store');
    ctx.type = metrics.contentType;
    ctx.body = await metrics.render();
  });
}
