/**
 * Peer for the side-by-side benchmark: Socket.IO with the polling transport only. Clients
 * authenticate with the same token (its `sub` names the room); `POST /v1/messages` (the gateway's
 * publish shape) emits to the room. `GET /stats` reports the Engine.IO HTTP requests and response
 * bytes so far, which is what "requests per message" means for Socket.IO.
 * `node benchmarks/peers/socketio-holder.mjs [port]`.
 */
import http from 'node:http';
import { Server } from 'socket.io';
import { userOf } from './mailbox.mjs';

let requests = 0;
let bytes = 0;
let nextId = 1;
const seen = new Map();

const server = http.createServer();
/** Counts Engine.IO's HTTP requests and response bytes (prepended after Socket.IO attaches). */
function countEngineRequests(req, res) {
  if (!req.url.startsWith('/socket.io/')) return;
  requests += 1;
  const write = res.write.bind(res);
  const end = res.end.bind(res);
  const count = (chunk) => {
    if (chunk && typeof chunk !== 'function') bytes += Buffer.byteLength(chunk);
  };
  res.write = (chunk, ...rest) => (count(chunk), write(chunk, ...rest));
  res.end = (chunk, ...rest) => (count(chunk), end(chunk, ...rest));
  res.once('finish', () => {
    bytes += 17;
    for (const [name, value] of Object.entries(res.getHeaders())) bytes += name.length + 4 + String(value).length;
  });
}

server.on('request', (req, res) => {
  if (req.url.startsWith('/socket.io/')) return;
  if (req.url === '/healthz') return res.end('{"status":"ok"}');
  if (req.url === '/stats') return res.end(JSON.stringify({ requests, bytes }));
  if (req.method === 'POST' && req.url === '/v1/messages') {
    const user = userOf(req.headers.authorization);
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => (text += chunk));
    req.on('end', () => {
      const input = JSON.parse(text);
      const key = `${user}\u0000${input.id}`;
      const existing = seen.get(key);
      if (existing) {
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ id: existing, duplicate: true }));
      }
      const id = nextId++;
      seen.set(key, id);
      io.to(input.to).emit('message', { id, body: input.body });
      res.writeHead(201, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id, duplicate: false }));
    });
    return;
  }
  res.writeHead(404).end();
});

const io = new Server(server, { transports: ['polling'], serveClient: false, pingInterval: 25_000, pingTimeout: 20_000 });
server.prependListener('request', countEngineRequests);
io.on('connection', (socket) => {
  const user = userOf(`Bearer ${socket.handshake.auth?.token ?? ''}`);
  if (!user) return socket.disconnect(true);
  socket.join(user);
});

server.keepAliveTimeout = 5_000;
server.listen({ port: Number(process.argv[2] ?? 0), host: '127.0.0.1', backlog: 4096 }, () => {
  process.stdout.write(`listening on http://127.0.0.1:${server.address().port}\n`);
});
