import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import type Koa from 'koa';

/**
 * Serves the customer-service chat demo (only mounted when GATEWAY_DEMO=1): the static files in
 * `demoDir` (pages, favicon), the legacy client bundle it runs on, and tokens for `demo-*` users so
 * the page needs no login. Minting tokens on request is exactly what makes this unfit for production.
 */
export interface DemoMiddlewareOptions {
  /** Folder with index.html, demo.js, demo.css, favicon.svg/.ico; only files directly inside it are served. */
  demoDir: string;
  /** dist/client/longpoll.legacy.js, served at /client/longpoll.legacy.js. */
  legacyBundlePath: string;
  /** Signs a token for a demo user with the `pub` claim the demo gives it (see demoPublishClaim). */
  issueToken: (userId: string, claims: { pub: string[] }) => Promise<string>;
}

/**
 * Who a demo user may write to, as a `pub` claim: customers (`demo-customer…`) only to agents,
 * agents (`demo-agent…`) only to customers, so one customer can never write to another. Any other
 * demo user may poll but publish to no one.
 */
export function demoPublishClaim(userId: string): { pub: string[] } {
  if (userId.startsWith('demo-customer')) return { pub: ['demo-agent*'] };
  if (userId.startsWith('demo-agent')) return { pub: ['demo-customer*'] };
  return { pub: [] };
}

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'application/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
};

/** A bare file name: no separators, no leading dot, no `%` escapes, so nothing can leave demoDir. */
const SAFE_FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9]+)+$/;
const DEMO_USER_ID = /^demo-[A-Za-z0-9._:@-]{1,123}$/;
const LEGACY_BUNDLE_PATH = '/client/longpoll.legacy.js';
/** The one agent the desk page works as; every customer writes to it. */
const DEMO_AGENT_ID = 'demo-agent';
/** 32 letters and digits without look-alikes (0/o, 1/l): 5 random bits per character. */
const ID_ALPHABET = 'abcdefghijkmnpqrstuvwxyz23456789';
const CUSTOMER_ID_LENGTH = 12;

/**
 * A new customer id, `demo-customer-` and 12 random characters (60 bits): one per customer tab, so
 * the desk can tell customers apart and two tabs never collide. Not a security boundary: the demo
 * is open by design (GATEWAY_DEMO is for trying the gateway out), and any visitor may take the
 * agent's token, see the customers' ids and then act as them.
 */
export function newDemoCustomerId(): string {
  const bytes = randomBytes(CUSTOMER_ID_LENGTH);
  let suffix = '';
  for (const byte of bytes) suffix += ID_ALPHABET[byte % ID_ALPHABET.length];
  return `demo-customer-${suffix}`;
}

/**
 * @example
 * app.use(createDemoMiddleware({ demoDir: 'demo', legacyBundlePath: 'dist/client/longpoll.legacy.js', issueToken }));
 * // then open http://127.0.0.1:8080/demo/?role=customer (in several tabs) and /demo/?role=agent
 */
export function createDemoMiddleware(options: DemoMiddlewareOptions): Koa.Middleware {
  const { demoDir, legacyBundlePath, issueToken } = options;

  return async function serveDemo(ctx, next) {
    const path = ctx.path;
    if (path === '/demo') {
      // Relative asset URLs in index.html resolve against /demo/, so insist on the slash.
      ctx.redirect(`/demo/${ctx.search}`);
      return;
    }
    if (path !== LEGACY_BUNDLE_PATH && !path.startsWith('/demo/')) {
      return next();
    }
    ctx.set('Cache-Control', 'no-store');
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
      ctx.set('Allow', 'GET, HEAD');
      respondWithError(ctx, 405, 'method_not_allowed', `${ctx.method} is not supported here.`);
      return;
    }
    if (path === LEGACY_BUNDLE_PATH) {
      await sendFile(ctx, legacyBundlePath, CONTENT_TYPES['.js']!, 'The legacy client is not built; run `npm run build:legacy`.');
      return;
    }
    const name = path.slice('/demo/'.length);
    if (name === 'token') {
      await sendToken(ctx, issueToken);
      return;
    }
    const fileName = name === '' ? 'index.html' : name;
    const contentType = CONTENT_TYPES[extname(fileName).toLowerCase()];
    if (!SAFE_FILE_NAME.test(fileName) || contentType === undefined) {
      respondWithError(ctx, 404, 'not_found', 'No such demo file.');
      return;
    }
    await sendFile(ctx, join(demoDir, fileName), contentType, 'No such demo file.');
  };
}

/**
 * `GET /demo/token?role=customer` mints a new customer id (a customer tab's first visit) and
 * `?role=agent` answers for the desk's agent; `?user=demo-…` renews the token of an id a tab already
 * holds. All answer `{token, user}`. Whatever is asked, the token is for one `demo-*` id with that
 * id's `pub` claim, so no page gets more than any demo page could always get.
 */
async function sendToken(ctx: Koa.Context, issueToken: DemoMiddlewareOptions['issueToken']): Promise<void> {
  const { user, role } = ctx.query;
  let userId: string;
  if (role !== undefined) {
    if (user !== undefined || (role !== 'customer' && role !== 'agent')) {
      respondWithError(ctx, 400, 'invalid_demo_role', 'Query `role` must be "customer" (a new customer id) or "agent", once, and without `user`.');
      return;
    }
    userId = role === 'customer' ? newDemoCustomerId() : DEMO_AGENT_ID;
  } else if (typeof user === 'string' && DEMO_USER_ID.test(user)) {
    userId = user;
  } else {
    respondWithError(ctx, 400, 'invalid_demo_user', 'Query `user` must be a user id starting with "demo-" (e.g. demo-customer), or ask for `role=customer`.');
    return;
  }
  ctx.body = { token: await issueToken(userId, demoPublishClaim(userId)), user: userId };
}

async function sendFile(ctx: Koa.Context, file: string, contentType: string, missingMessage: string): Promise<void> {
  let content: Buffer;
  try {
    content = await readFile(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'EISDIR' || code === 'ENOTDIR') {
      respondWithError(ctx, 404, 'not_found', missingMessage);
      return;
    }
    throw error;
  }
  ctx.type = contentType;
  ctx.body = content;
}

function respondWithError(ctx: Koa.Context, status: number, code: string, message: string): void {
  ctx.status = status;
  ctx.body = { error: { code, message } };
}
