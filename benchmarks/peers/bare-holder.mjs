/**
 * Peer for the benchmarks: the gateway's poll/publish API on bare node:http (no framework, no
 * database, no bus). `node benchmarks/peers/bare-holder.mjs [port]` prints its URL.
 */
import http from 'node:http';
import { answerMailboxPoll, createMailboxes, createTopics, emptyTopic, sendJson as send, topicParam, userOf } from './mailbox.mjs';

const mailboxes = createMailboxes();
const topics = createTopics();

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  if (url.pathname === '/healthz') return send(res, 200, '{"status":"ok"}');
  const user = userOf(req.headers.authorization);
  if (!user) return send(res, 401, '{"error":{"code":"missing_token","message":"no token"}}');
  if (req.method === 'GET' && url.pathname === '/v1/poll') {
    const cursor = Number(url.searchParams.get('cursor') ?? 0);
    const wait = Number(url.searchParams.get('wait') ?? 25);
    const topic = topicParam(url.searchParams.get('topic'), topics);
    if (topic) return holdTopicPoll(res, topic, cursor, wait);
    return answerMailboxPoll(res, mailboxes, user, cursor, wait);
  }
  if (req.method === 'POST' && url.pathname === '/v1/messages') {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => (text += chunk));
    req.on('end', () => {
      const input = JSON.parse(text);
      const result = input.topic ? topics.publish(user, input.topic, input.body) : mailboxes.publish(user, input.to, input.id, input.body);
      send(res, result.duplicate ? 200 : 201, JSON.stringify(result));
    });
    return;
  }
  send(res, 404, '{"error":{"code":"not_found","message":"no route"}}');
});
/** The broadcast benchmark's poll: one topic from a position (the mailbox is not read: nothing is sent to it). */
function holdTopicPoll(res, topic, cursor, wait) {
  const ready = topics.read(topic.name, topic.position, cursor);
  if (ready || wait === 0) return send(res, 200, ready ?? emptyTopic(topic.name, topic.position, cursor));
  let timer;
  const finish = () => {
    clearTimeout(timer);
    unsubscribe();
    res.off('close', finish);
    if (!res.writableEnded && !res.destroyed) send(res, 200, topics.read(topic.name, topic.position, cursor) ?? emptyTopic(topic.name, topic.position, cursor));
  };
  const unsubscribe = topics.wait(topic.name, finish);
  timer = setTimeout(finish, wait * 1000);
  res.on('close', finish);
}

server.keepAliveTimeout = 5_000;
server.requestTimeout = 0;
server.listen({ port: Number(process.argv[2] ?? 0), host: '127.0.0.1', backlog: 4096 }, () => {
  process.stdout.write(`listening on http://127.0.0.1:${server.address().port}\n`);
});
