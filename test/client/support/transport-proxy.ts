import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';

/**
 * What stands between a client and the gateway for one transport: `pass` it through, `refuse` it
 * (404, as an old gateway or a proxy without the route answers; an upgrade answered 404 too),
 * `buffer` it (an SSE stream's headers pass, its body is held back: a buffering proxy), or stay
 * `silent` (the connection is accepted and never gets a byte).
 */
export type ProxyMode = 'pass' | 'refuse' | 'buffer' | 'silent';

export interface TransportProxy {
  /** Base URL of the proxy (with a trailing slash), to give the client instead of the gateway's. */
  readonly url: string;
  /** How `GET /v1/ws` upgrades and `GET /v1/stream` requests are treated from now on (polls always pass). */
  mode: { websocket: ProxyMode; stream: ProxyMode };
  /** Requests seen, as `METHOD /path` (upgrades as `UPGRADE /path`). */
  readonly seen: string[];
  /** Cuts every WebSocket passed through so far (a network failure, from the client's side). */
  dropWebSockets(): void;
  close(): Promise<void>;
}

/** A node:http proxy on a random loopback port in front of the gateway at `target`. */
export async function startTransportProxy(target: string): Promise<TransportProxy> {
  const upstream = new URL(target);
  const sockets = new Set<Socket | Duplex>();
  const tunnels = new Set<Duplex>();
  const seen: string[] = [];
  const mode: TransportProxy['mode'] = { websocket: 'pass', stream: 'pass' };

  function passRequest(request: IncomingMessage, response: ServerResponse): void {
    const forwarded = httpRequest(
      { host: upstream.hostname, port: upstream.port, method: request.method, path: request.url, headers: request.headers },
      (answer) => {
        response.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(response);
      },
    );
    forwarded.on('error', () => response.destroy());
    response.on('close', () => forwarded.destroy());
    request.pipe(forwarded);
  }

  const server = createServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://proxy').pathname;
    seen.push(`${request.method} ${path}`);
    const streamMode = path === '/v1/stream' ? mode.stream : 'pass';
    if (streamMode === 'refuse') {
      response.writeHead(404, { 'Content-Type': 'application/json' });
      response.end(JSON.stringify({ error: { code: 'not_found', message: 'No such route here' } }));
    } else if (streamMode === 'buffer') {
      response.writeHead(200, { 'Content-Type': 'text/event-stream' });
      response.flushHeaders();
    } else if (streamMode === 'pass') passRequest(request, response);
    // silent: nothing, ever.
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    seen.push(`UPGRADE ${new URL(request.url ?? '/', 'http://proxy').pathname}`);
    if (mode.websocket === 'silent') return;
    if (mode.websocket !== 'pass') {
      socket.end('HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}');
      return;
    }
    const tunnel = connect(Number(upstream.port), upstream.hostname, () => {
      const lines = [`${request.method} ${request.url} HTTP/1.1`];
      for (let index = 0; index < request.rawHeaders.length; index += 2) lines.push(`${request.rawHeaders[index]}: ${request.rawHeaders[index + 1]}`);
      tunnel.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (head.length > 0) tunnel.write(head);
      socket.pipe(tunnel).pipe(socket);
    });
    tunnels.add(socket);
    const end = () => {
      tunnels.delete(socket);
      socket.destroy();
      tunnel.destroy();
    };
    tunnel.on('error', end);
    tunnel.on('close', end);
    socket.on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    mode,
    seen,
    dropWebSockets() {
      for (const socket of tunnels) socket.destroy();
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
