import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import type Koa from 'koa';
import type { TopicRight } from '../auth/claims.js';
import { TOPIC_NAME_PATTERN } from '../topic-name.js';

/**
 * Serves the customer-service desk demo (only mounted when GATEWAY_DEMO=1): the static files in
 * `demoDir` (pages, favicon), the legacy client bundle it runs on, and tokens for `demo-*` users so
 * the page needs no login. Minting tokens on request is exactly what makes this unfit for production.
 */
export interface DemoMiddlewareOptions {
  /** Folder with index.html, demo.js, demo.css, favicon.svg/.ico; only files directly inside it are served. */
  demoDir: string;
  /** dist/client/longpoll.legacy.js, served at /client/longpoll.legacy.js. */
  legacyBundlePath: string;
  /** Signs a token for a demo user with the claims the demo gives it (see demoClaims). */
  issueToken: (userId: string, claims: DemoClaims) => Promise<string>;
}

/**
 * What a demo token may do: `pub` (mailboxes it may write to: none, the desk runs on topics only)
 * and `topics` (topic pattern → rights; absent = no topic).
 *
 * @example
 * const claims: DemoClaims = { pub: [], topics: { announce: ['read'] } };
 */
export interface DemoClaims {
  pub: string[];
  topics?: Record<string, TopicRight[]>;
}

/** Where customers say "I am here" (they publish, agents read it from the start): how agents find conversations. */
const DEMO_DESK_TOPIC = 'desk';
/** What agents announce to every open customer page (customers read it from now). */
const DEMO_ANNOUNCE_TOPIC = 'announce';

/**
 * The topic of a customer's conversation, `conv:<customer id>`, or undefined when that is no topic
 * name (as for an id picked by hand with `?user=` that holds an `@` or is too long).
 *
 * @example
 * demoConversationTopic('demo-customer-k3m9p2x7q4rs'); // 'conv:demo-customer-k3m9p2x7q4rs'
 */
export function demoConversationTopic(customerId: string): string | undefined {
  const topic = `conv:${customerId}`;
  return TOPIC_NAME_PATTERN.test(topic) ? topic : undefined;
}

/**
 * The claims of a demo user. The desk runs on topics, so no one may write to a mailbox (`pub: []`):
 * - a customer (`demo-customer…`) reads and writes its own conversation, reads the announcements
 *   and may say hello on the desk without reading it: one customer never learns of another; it
 *   may see the desk's presence (its members are the agents reading it: "an agent is online");
 * - an agent (`demo-agent…`) reads and writes every conversation (`conv:*`, history included, so a
 *   second agent joining sees all that was said) and sees who reads it (the customer online or
 *   not), reads the desk and reads and writes announcements;
 * - any other demo user may poll its (empty) mailbox and nothing more.
 *
 * @example
 * demoClaims('demo-agent-k3m9p2x7q4rs').topics; // { 'conv:*': ['read', 'publish'], announce: [...], desk: ['read'] }
 */
export function demoClaims(userId: string): DemoClaims {
  if (userId.startsWith('demo-customer')) {
    // `presence` on the desk: the agents are the ones reading it, so its members say whether one is online.
    const topics: Record<string, TopicRight[]> = { [DEMO_ANNOUNCE_TOPIC]: ['read'], [DEMO_DESK_TOPIC]: ['publish', 'presence'] };
    const conversation = demoConversationTopic(userId);
    if (conversation !== undefined) topics[conversation] = ['read', 'publish'];
    return { pub: [], topics };
  }
  if (userId.startsWith('demo-agent')) {
    // `presence` on conversations: whether the customer is still there.
    return { pub: [], topics: { 'conv:*': ['read', 'publish', 'presence'], [DEMO_ANNOUNCE_TOPIC]: ['read', 'publish'], [DEMO_DESK_TOPIC]: ['read'] } };
  }
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
/** 32 letters and digits without look-alikes (0/o, 1/l): 5 random bits per character. */
const ID_ALPHABET = 'abcdefghijkmnpqrstuvwxyz23456789';
const RANDOM_ID_LENGTH = 12;

function newDemoId(prefix: string): string {
  const bytes = randomBytes(RANDOM_ID_LENGTH);
  let suffix = '';
  for (const byte of bytes) suffix += ID_ALPHABET[byte % ID_ALPHABET.length];
  return `${prefix}-${suffix}`;
}

/**
 * A new customer id, `demo-customer-` and 12 random characters (60 bits): one per customer tab, so
 * each tab is a conversation of its own and two tabs never collide. Not a security boundary: the
 * demo is open by design (GATEWAY_DEMO is for trying the gateway out), and any visitor may open the
 * agent page, read every conversation, see the customers' ids and then act as them.
 *
 * @example
 * newDemoCustomerId(); // 'demo-customer-k3m9p2x7q4rs'
 */
export function newDemoCustomerId(): string {
  return newDemoId('demo-customer');
}

/**
 * A new agent id, `demo-agent-` and 12 random characters: one per agent tab, so two agent tabs are
 * two agents (each sees the other's replies as someone else's).
 *
 * @example
 * newDemoAgentId(); // 'demo-agent-7hq2m4k9x3bn'
 */
export function newDemoAgentId(): string {
  return newDemoId('demo-agent');
}

/**
 * @example
 * app.use(createDemoMiddleware({ demoDir: 'demo', legacyBundlePath: 'dist/client/longpoll.legacy.js', issueToken }));
 * // then open http://127.0.0.1:8080/demo/?role=customer and /demo/?role=agent, each in several tabs
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
 * `?role=agent` a new agent id (an agent tab's); `?user=demo-…` renews the token of an id a tab
 * already holds. All answer `{token, user}`. Whatever is asked, the token is for one `demo-*` id
 * with that id's claims (demoClaims), so no page gets more than any demo page could always get.
 */
async function sendToken(ctx: Koa.Context, issueToken: DemoMiddlewareOptions['issueToken']): Promise<void> {
  const { user, role } = ctx.query;
  let userId: string;
  if (role !== undefined) {
    if (user !== undefined || (role !== 'customer' && role !== 'agent')) {
      respondWithError(ctx, 400, 'invalid_demo_role', 'Query `role` must be "customer" (a new customer id) or "agent" (a new agent id), once, and without `user`.');
      return;
    }
    userId = role === 'customer' ? newDemoCustomerId() : newDemoAgentId();
  } else if (typeof user === 'string' && DEMO_USER_ID.test(user)) {
    userId = user;
  } else {
    respondWithError(ctx, 400, 'invalid_demo_user', 'Query `user` must be a user id starting with "demo-" (e.g. demo-customer), or ask for `role=customer`.');
    return;
  }
  ctx.body = { token: await issueToken(userId, demoClaims(userId)), user: userId };
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
