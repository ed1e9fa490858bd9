import http from 'node:http';
import { Pool } from 'undici';
import WebSocket from 'ws';
import { createEventStreamParser } from '../client/transports/event-stream.js';

/** One message as the load generator sees it in a poll response. */
export interface ReceivedMessage {
  serverId: number;
  /** The publish sequence number from the body, when the body is one of this run's. */
  seq: number | undefined;
}

export interface PollOutcome {
  messages: ReceivedMessage[];
  cursor: number;
  /** Status line + headers + body, as received. */
  bytes: number;
  superseded: boolean;
}

/** One message of a publish: its recipient (a client index), idempotency key and body. */
export interface PublishItem {
  client: number;
  key: string;
  body: { run: string; seq: number };
}

/** What the load generator needs from a server: anything that can poll a mailbox and publish to one. */
export interface BenchTarget {
  poll(client: number, cursor: number, waitS: number, signal: AbortSignal): Promise<PollOutcome>;
  /** Idempotent under `key`: a retry after a lost answer must not store the message twice. */
  publish(client: number, key: string, body: { run: string; seq: number }): Promise<void>;
  /**
   * Several messages in one request, all or nothing: resolves once the server accepted every one
   * (each idempotent under its key, so a retry resends the same items). Absent when the server has
   * no batch publish; `--publish-batch` above 1 then refuses to run.
   */
  publishBatch?(items: readonly PublishItem[]): Promise<void>;
  /**
   * Opens one connection of `transport` for the client, reading from `cursor`, and hands every
   * batch to `onBatch` until the connection ends (resolves) or fails (rejects); the load generator
   * then opens another from the last cursor. What was received is acked by the target (coalesced),
   * as a client of that transport would. Absent when the server has no streams.
   */
  stream?(client: number, cursor: number, transport: 'sse' | 'ws', onBatch: (batch: PollOutcome) => void, signal: AbortSignal): Promise<void>;
  /** Acks sent as requests of their own (POST /v1/ack of SSE clients) so far. */
  readonly ackRequests?: number;
  /** The server's largest accepted `wait`, when it says (gateway: `X-Poll-Wait-Max`). */
  readonly pollWaitMaxS: number | undefined;
  /**
   * Bytes sent and received so far, every request and response (line, headers, body) as HTTP/1.1
   * text; absent when the target does not count them (the rates are then reported as null).
   */
  readonly traffic?: { readonly bytesSent: number; readonly bytesReceived: number };
  /** Distinct `X-Gateway-Worker` values seen in answers (workers of `start --workers N` send it). */
  readonly workerIdsSeen?: ReadonlySet<string>;
  close(): Promise<void>;
}

/** A non-2xx answer or a transport failure, with a short stable label for the report. */
export class BenchRequestError extends Error {
  override name = 'BenchRequestError';
  constructor(
    readonly label: string,
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
  }
}

export interface GatewayTargetOptions {
  url: URL;
  publisherToken: string;
  clientTokens: string[];
  clientUserIds: string[];
  publishConnections: number;
  /** Ask for a delivery receipt with every publish. */
  receipts?: boolean;
  /** Matches the `run` field of published bodies; others are reported as unknown. */
  runTag: () => string;
  /**
   * Extra query parameters of each client's polls, already encoded and without a leading `&`
   * (`client=c17&presence=1`), asked for once per client when the target is made; absent or `''`:
   * the polls carry only `cursor` and `wait`.
   */
  pollQuery?: (client: number) => string;
}

function headerBytes(statusCode: number, headers: Record<string, string | string[] | undefined>): number {
  let bytes = `HTTP/1.1 ${statusCode} OK\r\n\r\n`.length;
  for (const [name, value] of Object.entries(headers)) {
    for (const single of Array.isArray(value) ? value : [value ?? '']) bytes += name.length + 4 + Buffer.byteLength(single);
  }
  return bytes;
}

/** A request as it goes on the wire: request line, the headers undici adds and ours, body. */
function requestBytes(method: string, path: string, host: string, headers: Record<string, string>, body = ''): number {
  let bytes = `${method} ${path} HTTP/1.1\r\nhost: ${host}\r\nconnection: keep-alive\r\n\r\n`.length;
  for (const [name, value] of Object.entries(headers)) bytes += name.length + 4 + Buffer.byteLength(value);
  if (body !== '') {
    const length = Buffer.byteLength(body);
    bytes += `content-length: ${length}\r\n`.length + length;
  }
  return bytes;
}

function transportError(error: unknown): BenchRequestError {
  const code = (error as { code?: unknown }).code;
  const label = typeof code === 'string' ? code : (error as Error).name ?? 'Error';
  return new BenchRequestError(label, (error as Error).message, true);
}

/**
 * The gateway's HTTP API v1 through undici connection pools: one pool sized for every client's
 * held poll (a held poll occupies its connection), one small pool for the publisher. Reusing
 * keep-alive connections is what keeps the load generator from becoming the bottleneck.
 */
export function createGatewayTarget(options: GatewayTargetOptions): BenchTarget {
  const base = options.url.pathname.replace(/\/+$/, '');
  const origin = options.url.origin;
  const pollPool = new Pool(origin, { connections: options.clientTokens.length + 4, pipelining: 1, keepAliveTimeoutThreshold: 1_000 });
  const publishPool = new Pool(origin, { connections: options.publishConnections, pipelining: 1, keepAliveTimeoutThreshold: 1_000 });
  const pollHeaders = options.clientTokens.map((token) => ({ authorization: `Bearer ${token}` }));
  const pollQueries = options.clientTokens.map((_, client) => {
    const extra = options.pollQuery?.(client) ?? '';
    return extra === '' ? '' : `&${extra}`;
  });
  const publishHeaders = { authorization: `Bearer ${options.publisherToken}`, 'content-type': 'application/json' };
  let pollWaitMaxS: number | undefined;
  const receiptField = options.receipts ? { receipt: true } : {};
  const traffic = { bytesSent: 0, bytesReceived: 0 };
  const workerIdsSeen = new Set<string>();
  const host = options.url.host;
  const noteWorker = (headers: Record<string, string | string[] | undefined>) => {
    const worker = headers['x-gateway-worker'];
    if (typeof worker === 'string' && workerIdsSeen.size < 1_024) workerIdsSeen.add(worker);
  };

  /** POSTs a publish (single or batch) and returns the answer's text; throws on transport errors and non-2xx. */
  /** The run's messages in an answer (`run` tag and `seq` from the body). */
  function received(messages: Array<{ id: number; body: unknown }>): ReceivedMessage[] {
    const tag = options.runTag();
    return messages.map((message) => {
      const body = message.body as { run?: unknown; seq?: unknown } | null;
      const ours = typeof body === 'object' && body !== null && body.run === tag && typeof body.seq === 'number';
      return { serverId: message.id, seq: ours ? (body.seq as number) : undefined };
    });
  }

  /** Acks at most once per 100 ms per client, the last cursor received: what the client library does. */
  const ACK_COALESCE_MS = 100;
  function coalescedAcks(send: (cursor: number) => void): { received(cursor: number): void; flush(): void } {
    let pending: number | undefined;
    let timer: NodeJS.Timeout | undefined;
    const flush = () => {
      timer = undefined;
      if (pending === undefined) return;
      const cursor = pending;
      pending = undefined;
      send(cursor);
    };
    return {
      received(cursor) {
        pending = cursor;
        timer ??= setTimeout(flush, ACK_COALESCE_MS);
      },
      flush() {
        clearTimeout(timer);
        flush();
      },
    };
  }

  const ackHeaders = options.clientTokens.map((token) => ({ authorization: `Bearer ${token}`, 'content-type': 'application/json' }));
  let ackRequests = 0;
  function postAck(client: number, cursor: number): void {
    ackRequests += 1;
    const body = JSON.stringify({ cursor });
    traffic.bytesSent += requestBytes('POST', `${base}/v1/ack`, host, ackHeaders[client]!, body);
    publishPool
      .request({ method: 'POST', path: `${base}/v1/ack`, headers: ackHeaders[client], body, headersTimeout: 30_000, bodyTimeout: 30_000 })
      .then(async (response) => {
        const text = await response.body.text();
        traffic.bytesReceived += headerBytes(response.statusCode, response.headers) + Buffer.byteLength(text);
      })
      // An ack that fails is covered by the next one (acks go through a cursor).
      .catch(() => {});
  }

  /** SSE: GET /v1/stream on a connection of its own; each `data:` line is a poll answer. */
  function streamSse(client: number, cursor: number, onBatch: (batch: PollOutcome) => void, signal: AbortSignal): Promise<void> {
    const path = `${base}/v1/stream?cursor=${cursor}${pollQueries[client]!}`;
    const acks = coalescedAcks((acked) => postAck(client, acked));
    return new Promise<void>((resolve, reject) => {
      traffic.bytesSent += requestBytes('GET', path, host, pollHeaders[client]!);
      const request = http.get(`${origin}${path}`, { headers: pollHeaders[client], agent: false });
      const stop = () => request.destroy();
      signal.addEventListener('abort', stop, { once: true });
      const done = (error?: Error) => {
        signal.removeEventListener('abort', stop);
        acks.flush();
        if (error && !signal.aborted) reject(error);
        else resolve();
      };
      request.on('error', (error) => done(transportError(error)));
      request.on('response', (response) => {
        traffic.bytesReceived += headerBytes(response.statusCode ?? 0, response.headers);
        noteWorker(response.headers);
        if (response.statusCode !== 200) {
          let text = '';
          response.on('data', (chunk: Buffer) => (text += chunk.toString()));
          response.on('end', () => done(statusError(response.statusCode ?? 0, text)));
          return;
        }
        // The client library's parser: one reading of the event stream format.
        const parser = createEventStreamParser();
        // Bytes received since the last event (its id and data lines, heartbeats before it).
        let unassigned = 0;
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => {
          const bytes = Buffer.byteLength(chunk);
          traffic.bytesReceived += bytes;
          unassigned += bytes;
          for (const data of parser.push(chunk)) {
            const answer = JSON.parse(data) as { messages: Array<{ id: number; body: unknown }>; cursor: number };
            onBatch({ messages: received(answer.messages), cursor: answer.cursor, bytes: unassigned, superseded: false });
            unassigned = 0;
            acks.received(answer.cursor);
          }
        });
        response.on('end', () => done());
        response.on('error', (error) => done(transportError(error)));
      });
    });
  }

  /** WebSocket: GET /v1/ws; each `batch` frame is a poll answer; acks are frames. */
  function streamWs(client: number, cursor: number, onBatch: (batch: PollOutcome) => void, signal: AbortSignal): Promise<void> {
    const token = options.clientTokens[client]!;
    const path = `${base}/v1/ws?access_token=${encodeURIComponent(token)}&cursor=${cursor}${pollQueries[client]!}`;
    // The upgrade request and answer as they go on the wire (ws adds its key and version headers).
    traffic.bytesSent += requestBytes('GET', path, host, { upgrade: 'websocket', connection: 'Upgrade', 'sec-websocket-key': 'x'.repeat(24), 'sec-websocket-version': '13' });
    return new Promise<void>((resolve, reject) => {
      const socket = new WebSocket(`${origin.replace(/^http/, 'ws')}${path}`, { perMessageDeflate: false });
      const acks = coalescedAcks((acked) => {
        if (socket.readyState !== WebSocket.OPEN) return;
        const frame = `{"type":"ack","cursor":${acked}}`;
        // A masked client frame: 2 header bytes + 4 of mask (payloads under 126 bytes).
        traffic.bytesSent += frame.length + 6;
        socket.send(frame);
      });
      const stop = () => socket.terminate();
      signal.addEventListener('abort', stop, { once: true });
      let failure: Error | undefined;
      socket.on('upgrade', (response) => {
        traffic.bytesReceived += headerBytes(101, response.headers);
        noteWorker(response.headers);
      });
      socket.on('unexpected-response', (_request, response) => {
        let text = '';
        response.on('data', (chunk: Buffer) => (text += chunk.toString()));
        response.on('end', () => {
          failure = statusError(response.statusCode ?? 0, text);
          socket.terminate();
        });
      });
      socket.on('message', (data: Buffer) => {
        // A server frame: 2 header bytes, 4 for payloads of 126 bytes to 64 KiB, 10 above.
        traffic.bytesReceived += data.length + (data.length < 126 ? 2 : data.length <= 65_535 ? 4 : 10);
        const frame = JSON.parse(data.toString()) as { type: string; messages?: Array<{ id: number; body: unknown }>; cursor?: number };
        if (frame.type !== 'batch') return;
        onBatch({ messages: received(frame.messages ?? []), cursor: frame.cursor!, bytes: data.length, superseded: false });
        acks.received(frame.cursor!);
      });
      socket.on('error', (error) => (failure ??= transportError(error)));
      socket.on('close', () => {
        signal.removeEventListener('abort', stop);
        acks.flush();
        if (failure && !signal.aborted) reject(failure);
        else resolve();
      });
    });
  }

  async function postPublish(path: string, payload: unknown): Promise<string> {
    const body = JSON.stringify(payload);
    traffic.bytesSent += requestBytes('POST', `${base}${path}`, host, publishHeaders, body);
    let response;
    try {
      response = await publishPool.request({
        method: 'POST',
        path: `${base}${path}`,
        headers: publishHeaders,
        body,
        headersTimeout: 30_000,
        bodyTimeout: 30_000,
      });
    } catch (error) {
      throw transportError(error);
    }
    const text = await response.body.text();
    traffic.bytesReceived += headerBytes(response.statusCode, response.headers) + Buffer.byteLength(text);
    noteWorker(response.headers);
    if (response.statusCode !== 201 && response.statusCode !== 200) throw statusError(response.statusCode, text);
    return text;
  }

  return {
    get pollWaitMaxS() {
      return pollWaitMaxS;
    },
    get ackRequests() {
      return ackRequests;
    },
    traffic,
    workerIdsSeen,
    async poll(client, cursor, waitS, signal) {
      const path = `${base}/v1/poll?cursor=${cursor}&wait=${waitS}${pollQueries[client]!}`;
      traffic.bytesSent += requestBytes('GET', path, host, pollHeaders[client]!);
      let response;
      try {
        response = await pollPool.request({
          method: 'GET',
          path,
          headers: pollHeaders[client],
          signal,
          headersTimeout: (waitS + 30) * 1000,
          bodyTimeout: 30_000,
        });
      } catch (error) {
        throw transportError(error);
      }
      const text = await response.body.text();
      const bytes = headerBytes(response.statusCode, response.headers) + Buffer.byteLength(text);
      traffic.bytesReceived += bytes;
      noteWorker(response.headers);
      const waitMax = Number(response.headers['x-poll-wait-max']);
      if (Number.isFinite(waitMax)) pollWaitMaxS = waitMax;
      if (response.statusCode !== 200) throw statusError(response.statusCode, text);
      const parsed = JSON.parse(text) as { messages: Array<{ id: number; body: unknown }>; cursor: number; superseded?: boolean };
      return {
        messages: received(parsed.messages),
        cursor: parsed.cursor,
        bytes,
        superseded: parsed.superseded === true,
      };
    },
    stream(client, cursor, transport, onBatch, signal) {
      return transport === 'sse' ? streamSse(client, cursor, onBatch, signal) : streamWs(client, cursor, onBatch, signal);
    },
    async publish(client, key, body) {
      await postPublish('/v1/messages', { to: options.clientUserIds[client], id: key, body, ...receiptField });
    },
    async publishBatch(items) {
      const text = await postPublish('/v1/messages/batch', {
        messages: items.map((item) => ({ to: options.clientUserIds[item.client], id: item.key, body: item.body, ...receiptField })),
      });
      // The answer lists one result per message, in order: fewer means the server dropped some.
      let results: unknown;
      try {
        results = (JSON.parse(text) as { results?: unknown }).results;
      } catch {
        results = undefined;
      }
      if (!Array.isArray(results) || results.length !== items.length) {
        throw new BenchRequestError('bad batch answer', `expected ${items.length} results, got ${text.slice(0, 200)}`, false);
      }
    },
    async close() {
      await Promise.all([pollPool.close(), publishPool.close()]);
    },
  };
}

function statusError(status: number, text: string): BenchRequestError {
  let code = '';
  try {
    code = (JSON.parse(text) as { error?: { code?: string } }).error?.code ?? '';
  } catch {
    // Not the gateway's JSON error shape (a proxy's HTML page, say): the status says enough.
  }
  const retryable = status >= 500 || status === 429 || status === 408;
  return new BenchRequestError(code ? `${status} ${code}` : String(status), `HTTP ${status}: ${text.slice(0, 200)}`, retryable);
}
