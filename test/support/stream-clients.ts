/**
 * Clients of the two streaming transports, GET /v1/stream (Server-Sent Events) and GET /v1/ws
 * (WebSocket), for tests that cut connections on purpose: `cut()` destroys the socket the way a
 * lost network or a killed tab does, and from that moment nothing more is handed to the test,
 * not even what was already in the socket's buffer (a real client would never have seen it).
 */
import http from 'node:http';
import WebSocket from 'ws';

/** One dispatched SSE event: its `id:` (undefined when it had none) and its `data:` lines joined. */
export interface ServerSentEvent {
  id: string | undefined;
  data: string;
}

/** How a streaming connection ended: the server ended it, the test cut it, or the network failed. */
export type StreamEnd = 'ended' | 'cut' | 'error';

export interface StreamConnection {
  /** The HTTP status the stream was answered with (101 for an accepted WebSocket). */
  status: number;
  /** The answer's headers (an accepted WebSocket's 101 headers). */
  headers: http.IncomingHttpHeaders;
  /** The body of a refused answer ('' for an accepted one). */
  refusal: string;
  /** Destroys the socket now; no event or frame is handed over after this call. */
  cut(): void;
  readonly ended: Promise<StreamEnd>;
}

/**
 * Opens GET /v1/stream (`pathAndQuery` is `/v1/stream?…`) and hands each event to `onEvent` as it
 * arrives, parsed as a browser's EventSource does (comments and `retry:` are not events). Resolves
 * once the answer's status is known; a refused answer has ended by then.
 */
export function openEventStream(
  baseUrl: string,
  pathAndQuery: string,
  init: { token: string; lastEventId?: string | undefined; timeoutMs?: number },
  onEvent: (event: ServerSentEvent, cut: () => void) => void,
): Promise<StreamConnection> {
  return new Promise((resolve, reject) => {
    let cut = false;
    const cutNow = () => {
      cut = true;
      request.destroy();
      settle('cut');
    };
    let settle: (end: StreamEnd) => void = () => {};
    const ended = new Promise<StreamEnd>((done) => {
      let settled = false;
      settle = (end) => {
        if (settled) return;
        settled = true;
        done(end);
      };
    });
    const request = http.get(
      `${baseUrl}${pathAndQuery}`,
      {
        agent: false,
        headers: {
          Authorization: `Bearer ${init.token}`,
          Accept: 'text/event-stream',
          ...(init.lastEventId === undefined ? {} : { 'Last-Event-ID': init.lastEventId }),
        },
        timeout: init.timeoutMs ?? 5_000,
      },
      (response) => {
        // The timeout bounds connecting and the answer's head; a stream may then be quiet for long.
        request.setTimeout(0);
        response.setEncoding('utf8');
        const status = response.statusCode ?? 0;
        const connection: StreamConnection = {
          status,
          headers: response.headers,
          refusal: '',
          cut: cutNow,
          ended,
        };
        response.on('error', () => settle(cut ? 'cut' : 'error'));
        response.on('close', () => settle(cut ? 'cut' : response.complete ? 'ended' : 'error'));
        if (status !== 200) {
          let body = '';
          response.on('data', (chunk: string) => (body += chunk));
          response.on('end', () => {
            connection.refusal = body;
            resolve(connection);
          });
          return;
        }
        let pending = '';
        let id: string | undefined;
        let data: string[] = [];
        response.on('data', (chunk: string) => {
          pending += chunk;
          let newline: number;
          while (!cut && (newline = pending.indexOf('\n')) !== -1) {
            const line = pending.slice(0, newline).replace(/\r$/, '');
            pending = pending.slice(newline + 1);
            if (line === '') {
              if (data.length > 0) onEvent({ id, data: data.join('\n') }, cutNow);
              data = [];
              continue;
            }
            if (line.startsWith(':')) continue;
            const colon = line.indexOf(':');
            const field = colon === -1 ? line : line.slice(0, colon);
            const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
            // As EventSource: the last id seen stays the id of the events after it.
            if (field === 'id') id = value;
            else if (field === 'data') data.push(value);
          }
        });
        resolve(connection);
      },
    );
    request.on('timeout', () => request.destroy(new Error('the stream did not answer in time')));
    request.on('error', (error) => {
      settle(cut ? 'cut' : 'error');
      reject(error);
    });
  });
}

/**
 * Opens GET /v1/ws (`query` without `access_token`, which is added) and hands each text frame to
 * `onFrame`, parsed. Resolves once the upgrade was accepted or refused (a refusal has its status
 * and body, and has ended).
 */
export function openGatewaySocket(
  baseUrl: string,
  token: string,
  query: string,
  onFrame: (frame: Record<string, unknown>, socket: WebSocket, cut: () => void) => void,
  init: { timeoutMs?: number } = {},
): Promise<StreamConnection & { socket: WebSocket }> {
  return new Promise((resolve, reject) => {
    const url = `${baseUrl.replace(/^http/, 'ws')}/v1/ws?access_token=${encodeURIComponent(token)}${query ? `&${query}` : ''}`;
    const socket = new WebSocket(url, { handshakeTimeout: init.timeoutMs ?? 5_000, perMessageDeflate: false });
    let cut = false;
    const cutNow = () => {
      cut = true;
      socket.terminate();
    };
    let headers: http.IncomingHttpHeaders = {};
    const ended = new Promise<StreamEnd>((done) => {
      socket.on('close', (code) => done(cut ? 'cut' : code === 1006 ? 'error' : 'ended'));
    });
    const connection = (status: number, refusal: string) => ({
      status,
      headers,
      refusal,
      socket,
      cut: cutNow,
      ended,
    });
    socket.on('upgrade', (response) => (headers = response.headers));
    socket.on('message', (data, isBinary) => {
      if (cut || isBinary) return;
      onFrame(JSON.parse(data.toString()) as Record<string, unknown>, socket, cutNow);
    });
    socket.on('unexpected-response', (_request, response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString()));
      response.on('end', () => {
        socket.terminate();
        resolve(connection(response.statusCode ?? 0, body));
      });
      response.on('error', reject);
    });
    socket.once('open', () => resolve(connection(101, '')));
    // After 'open' an error only ends the connection ('close' follows); before it, it refuses.
    socket.on('error', reject);
  });
}

/** Sends a frame if the socket is still open; a frame sent to a closed socket is simply lost, as on a real network. */
export function sendFrame(socket: WebSocket, frame: unknown): void {
  if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame), () => {});
}

/** Waits for the connection to end, cutting it after `holdMs` if it has not ended by then. */
export async function holdThenCut(connection: StreamConnection, holdMs: number): Promise<StreamEnd> {
  const timer = setTimeout(() => connection.cut(), holdMs);
  try {
    return await connection.ended;
  } finally {
    clearTimeout(timer);
  }
}
