import type Router from '@koa/router';

export interface ReadinessCheck {
  name: string;
  check(): Promise<void>;
}

const READINESS_TIMEOUT_MS = 2_000;

function withTimeout(promise: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<void>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** /healthz: the process answers. /readyz: store and bus answer too (load balancers route on it). */
export function registerHealthRoutes(router: Router, checks: ReadinessCheck[], isDraining: () => boolean): void {
  router.get('/healthz', function reportLiveness(ctx) {
    ctx.body = { status: 'ok' };
  });

  router.get('/readyz', async function reportReadiness(ctx) {
    const results = await Promise.all(
      checks.map(async ({ name, check }) => {
        try {
          await withTimeout(check(), READINESS_TIMEOUT_MS);
          return [name, 'up'] as const;
        } catch {
          return [name, 'down'] as const;
        }
      }),
    );
    const ready = !isDraining() && results.every(([, state]) => state === 'up');
    ctx.status = ready ? 200 : 503;
    ctx.body = { status: ready ? 'ready' : isDraining() ? 'draining' : 'unavailable', checks: Object.fromEntries(results) };
  });
}
