/**
 * Peer for the benchmarks: the durable floor. The bare node:http holder's poll/publish API, but
 * each publish is first written with one single-row mysql2 INSERT (autocommit, a unique key per
 * sender and message id for idempotency) and only then wakes the poll, in process. It is the
 * least a durable gateway on these dependencies can cost per message: no framework, no token
 * check, no bus, no group commit. `MYSQL_URL=… node benchmarks/peers/durable-holder.mjs [port]`.
 */
import http from 'node:http';
import mysql from 'mysql2/promise';
import { answerMailboxPoll, createMailboxes, sendJson as send, userOf } from './mailbox.mjs';

const pool = mysql.createPool({ uri: process.env.MYSQL_URL, connectionLimit: 16, supportBigNumbers: true });
await pool.query(`CREATE TABLE IF NOT EXISTS floor_messages (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  user_id VARCHAR(128) NOT NULL,
  sender_id VARCHAR(128) NOT NULL,
  client_message_id VARCHAR(128) NULL,
  body TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  UNIQUE KEY sender_message (sender_id, client_message_id),
  KEY user_messages (user_id, id)
) ENGINE=InnoDB`);

const mailboxes = createMailboxes();

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  if (url.pathname === '/healthz') return send(res, 200, '{"status":"ok"}');
  const user = userOf(req.headers.authorization);
  if (!user) return send(res, 401, '{"error":{"code":"missing_token","message":"no token"}}');
  if (req.method === 'GET' && url.pathname === '/v1/poll') {
    const cursor = Number(url.searchParams.get('cursor') ?? 0);
    const wait = Number(url.searchParams.get('wait') ?? 25);
    return answerMailboxPoll(res, mailboxes, user, cursor, wait);
  }
  if (req.method === 'POST' && url.pathname === '/v1/messages') {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => (text += chunk));
    req.on('end', async () => {
      const input = JSON.parse(text);
      try {
        await pool.execute('INSERT INTO floor_messages (user_id, sender_id, client_message_id, body, created_at) VALUES (?, ?, ?, ?, ?)', [
          input.to,
          user,
          input.id ?? null,
          JSON.stringify(input.body),
          Date.now(),
        ]);
      } catch (error) {
        // A repeat of a stored (sender, id): answered as the duplicate it is, stored once.
        if (error.code !== 'ER_DUP_ENTRY') return send(res, 503, '{"error":{"code":"store_unavailable","message":"insert failed"}}');
      }
      const result = mailboxes.publish(user, input.to, input.id, input.body);
      send(res, result.duplicate ? 200 : 201, JSON.stringify(result));
    });
    return;
  }
  send(res, 404, '{"error":{"code":"not_found","message":"no route"}}');
});

server.keepAliveTimeout = 5_000;
server.requestTimeout = 0;
server.listen({ port: Number(process.argv[2] ?? 0), host: '127.0.0.1', backlog: 4096 }, () => {
  process.stdout.write(`listening on http://127.0.0.1:${server.address().port}\n`);
});
