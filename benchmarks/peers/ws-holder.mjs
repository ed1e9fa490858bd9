/**
 * Peer for the benchmarks: the smallest WebSocket server that speaks the gateway's `GET /v1/ws`
 * frames (`batch` out, `ack` in) and its publish API, on node:http and the `ws` package: in
 * memory, no token verification, no durability. It is the floor a WebSocket holder in Node can
 * reach. `node benchmarks/peers/ws-holder.mjs [port]`.
 */
import http from 'node:http';
import { WebSocketServer } from 'ws';
import { createMailboxes, userOf } from './mailbox.mjs';

const mailboxes = createMailboxes();
const sockets = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 64 * 1024 });

const server = http.createServer((request, response) => {
  if (request.method === 'GET' && request.url === '/healthz') {
    response.setHeader('Content-Type', 'application/json');
    response.end('{"status":"ok"}');
    return;
  }
  // The load tester settles each mailbox with a short poll before a mode: answer it (no holding here).
  if (request.method === 'GET' && request.url.startsWith('/v1/poll')) {
    const user = userOf(request.headers.authorization);
    const cursor = Number(new URL(request.url, 'http://holder').searchParams.get('cursor') ?? 0);
    response.setHeader('Content-Type', 'application/json');
    response.end(mailboxes.read(user, cursor) ?? `{"messages":[],"cursor":${cursor}}`);
    return;
  }
  if (request.method === 'POST' && request.url === '/v1/messages') {
    const user = userOf(request.headers.authorization);
    let text = '';
    request.setEncoding('utf8');
    request.on('data', (chunk) => (text += chunk));
    request.on('end', () => {
      const input = JSON.parse(text);
      const result = mailboxes.publish(user, input.to, input.id, input.body);
      response.statusCode = result.duplicate ? 200 : 201;
      response.setHeader('Content-Type', 'application/json');
      response.end(JSON.stringify(result));
    });
    return;
  }
  response.statusCode = 404;
  response.end();
});

server.on('upgrade', (request, socket, head) => {
  const url = new URL(request.url, 'http://holder');
  const token = url.searchParams.get('access_token');
  const user = token ? userOf(`Bearer ${token}`) : undefined;
  if (url.pathname !== '/v1/ws' || !user) {
    socket.end('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\n\r\n');
    return;
  }
  sockets.handleUpgrade(request, socket, head, (ws) => {
    let sent = Number(url.searchParams.get('cursor') ?? 0);
    const send = () => {
      const body = mailboxes.read(user, sent);
      if (!body) return;
      sent = Number(/"cursor":(\d+)\}$/.exec(body)[1]);
      ws.send(`{"type":"batch",${body.slice(1)}`);
    };
    const stopWaiting = mailboxes.wait(user, send);
    ws.on('message', () => {}); // acks: the mailbox already dropped what it sent
    ws.on('close', stopWaiting);
    send();
  });
});
server.keepAliveTimeout = 5_000;
server.requestTimeout = 0;
server.listen({ port: Number(process.argv[2] ?? 0), host: '127.0.0.1', backlog: 4096 }, () => {
  process.stdout.write(`listening on http://127.0.0.1:${server.address().port}\n`);
});
