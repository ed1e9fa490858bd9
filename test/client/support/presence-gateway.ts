import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { PresenceEvent, PollMessage } from '../../../src/client/index.js';

/**
 * A node:http stand-in for the gateway's presence API, on 127.0.0.1 and a random port, speaking
 * the wire format the clients are written against: `client` and `presence` on polls (GET query or
 * POST body, text/plain or JSON), presence events in poll answers, `GET /v1/presence?user=…` and
 * `GET /v1/topics/{name}/presence`, with the gateway's refusals. It records every request as it
 * arrived, so tests assert what the clients put on the wire.
 */
export interface PresenceRequest {
  method: string;
  /** Path and query exactly as sent (percent-encoding kept). */
  rawUrl: string;
  url: URL;
  /** The Bearer token, or `access_token` from the query (the legacy build's way). */
  token: string | null;
  contentType: string | undefined;
  /** A POST's parsed JSON body. */
  body: Record<string, unknown> | undefined;
}

export interface UserEntry {
  online: boolean;
  clients?: number;
  lastSeenAt: string | null;
}

export interface TopicEntry {
  user: string;
  clients: number;
  since: string;
}

/** A scripted poll answer, sent instead of the default empty one (the poll's parameters are still recorded). */
export type ScriptedPoll = { status?: number; body: unknown };

const CLIENT_ID = /^[A-Za-z0-9_-]{1,64}$/;
const USER_ID = /^[A-Za-z0-9._:@-]{1,128}$/;
const TOPIC_NAME = /^[A-Za-z0-9._:-]{1,128}$/;

export async function startPresenceGateway(options: { holdMs?: number; usersMax?: number; membersMax?: number; forbiddenTopics?: string[] } = {}) {
  const holdMs = options.holdMs ?? 20;
  const usersMax = options.usersMax ?? 100;
  const membersMax = options.membersMax ?? 2;
  const requests: PresenceRequest[] = [];
  const users = new Map<string, UserEntry>();
  const topics = new Map<string, TopicEntry[]>();
  const polls: ScriptedPoll[] = [];
  const mailbox: PollMessage[] = [];
  /** Presence events waiting for the next poll that asks for presence. */
  const pendingPresence: PresenceEvent[] = [];
  /** Answers for the next presence / topic-presence look-ups, one per request (a refusal, say). */
  const lookups: ScriptedPoll[] = [];
  /** Tokens that may not ask about presence (403 forbidden_presence). */
  const forbiddenPresence = new Set<string>();

  function send(response: ServerResponse, status: number, body: unknown): void {
    response.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', 'X-Poll-Wait-Max': '30' });
    response.end(JSON.stringify(body));
  }

  const refuse = (response: ServerResponse, status: number, code: string) => send(response, status, { error: { code, message: `fake ${code}` } });

  async function readBody(request: IncomingMessage): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  }

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const rawUrl = request.url ?? '/';
    const url = new URL(rawUrl, 'http://127.0.0.1/');
    const bearer = /^Bearer (.+)$/.exec(request.headers.authorization ?? '');
    const text = request.method === 'POST' ? await readBody(request) : '';
    const recorded: PresenceRequest = {
      method: request.method ?? 'GET',
      rawUrl,
      url,
      token: bearer ? bearer[1]! : url.searchParams.get('access_token'),
      contentType: request.headers['content-type'],
      body: text ? (JSON.parse(text) as Record<string, unknown>) : undefined,
    };
    requests.push(recorded);
    if (!recorded.token) return refuse(response, 401, 'missing_token');
    if (url.pathname === '/v1/poll') return poll(recorded, request, response);
    const scripted = lookups.shift();
    if (scripted) return send(response, scripted.status ?? 200, scripted.body);
    if (request.method === 'GET' && url.pathname === '/v1/presence') return userPresence(recorded, response);
    const topicPath = /^\/v1\/topics\/([^/]+)\/presence$/.exec(url.pathname);
    if (request.method === 'GET' && topicPath) return topicPresence(decodeURIComponent(topicPath[1]!), recorded, response);
    refuse(response, 404, 'not_found');
  }

  function poll(recorded: PresenceRequest, request: IncomingMessage, response: ServerResponse): void {
    const params = recorded.method === 'POST' ? recorded.body! : Object.fromEntries(recorded.url.searchParams);
    if (params.client !== undefined && !(typeof params.client === 'string' && CLIENT_ID.test(params.client))) return refuse(response, 400, 'invalid_request');
    const scripted = polls.shift();
    if (scripted) return send(response, scripted.status ?? 200, scripted.body);
    const askedPresence = params.presence === true || params.presence === '1';
    const answer = () => {
      const cursor = Number(params.cursor ?? 0);
      const messages = mailbox.splice(0);
      const body: Record<string, unknown> = { messages, cursor: messages.length > 0 ? messages[messages.length - 1]!.id : cursor };
      if (params.topics) body.positions = Object.fromEntries(Object.entries(params.topics as Record<string, number | null>).map(([name, position]) => [name, position ?? 0]));
      if (askedPresence && pendingPresence.length > 0) body.presence = pendingPresence.splice(0);
      send(response, 200, body);
    };
    const timer = setTimeout(answer, holdMs);
    // A poll abandoned (stop, or sent again with other topics) is answered by nobody.
    request.once('close', () => {
      if (!response.writableEnded) clearTimeout(timer);
    });
  }

  function userPresence(recorded: PresenceRequest, response: ServerResponse): void {
    const asked = recorded.url.searchParams.getAll('user');
    if (forbiddenPresence.has(recorded.token!)) return refuse(response, 403, 'forbidden_presence');
    if (asked.length === 0 || asked.length > usersMax) return refuse(response, 400, 'too_many_users');
    if (asked.some((user) => !USER_ID.test(user))) return refuse(response, 400, 'invalid_user_id');
    send(response, 200, { users: Object.fromEntries(asked.map((user) => [user, users.get(user) ?? { online: false, lastSeenAt: null }])) });
  }

  function topicPresence(name: string, recorded: PresenceRequest, response: ServerResponse): void {
    if (!TOPIC_NAME.test(name)) return refuse(response, 400, 'invalid_topic');
    if (options.forbiddenTopics?.includes(name)) return refuse(response, 403, 'forbidden_topic');
    const members = topics.get(name) ?? [];
    send(response, 200, members.length > membersMax ? { count: members.length } : { count: members.length, members });
  }

  const server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => refuse(response, 500, `internal_error: ${String(error)}`));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}/`,
    requests,
    /** Requests to /v1/poll, in order. */
    polls: () => requests.filter((request) => request.url.pathname === '/v1/poll'),
    /** The poll's parameters, wherever they travelled (GET query as strings, POST body as JSON). */
    pollParams: (request: PresenceRequest): Record<string, unknown> => (request.method === 'POST' ? request.body! : Object.fromEntries(request.url.searchParams)),
    setUser(user: string, entry: UserEntry) {
      users.set(user, entry);
    },
    setTopic(name: string, members: TopicEntry[]) {
      topics.set(name, members);
    },
    deliver(message: PollMessage) {
      mailbox.push(message);
    },
    /** Joins and leaves for the next poll that asks for presence. */
    announce(...events: PresenceEvent[]) {
      pendingPresence.push(...events);
    },
    scriptPolls(...answers: ScriptedPoll[]) {
      polls.push(...answers);
    },
    scriptLookups(...answers: ScriptedPoll[]) {
      lookups.push(...answers);
    },
    forbidPresence(token: string) {
      forbiddenPresence.add(token);
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export type PresenceGateway = Awaited<ReturnType<typeof startPresenceGateway>>;
