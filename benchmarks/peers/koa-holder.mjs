/**
 * Peer for the benchmarks: the gateway's poll/publish API on a minimal Koa + @koa/router app (no
 * database, no bus, no token verification). `node benchmarks/peers/koa-holder.mjs [port]`.
 */
import http from 'node:http';
import Router from '@koa/router';
import Koa from 'koa';
import { createMailboxes, createTopics, empty, emptyTopic, topicParam, userOf } from './mailbox.mjs';

const mailboxes = createMailboxes();

/** Resolves on a wake, the timeout or the client going away, whichever comes first. */
function heldUntilWoken(ctx, wait, subscribe) {
  return new Promise((resolve) => {
    const timer = setTimeout(finish, wait * 1000);
    const unsubscribe = subscribe(finish);
    ctx.res.once('close', finish);
    function finish() {
      clearTimeout(timer);
      unsubscribe();
      ctx.res.off('close', finish);
      resolve();
    }
  });
}
const topics = createTopics();
const app = new Koa();
const router = new Router();

router.get('/healthz', (ctx) => {
  ctx.body = { status: 'ok' };
});
router.get('/v1/poll', async (ctx) => {
  const user = userOf(ctx.get('Authorization'));
  if (!user) ctx.throw(401);
  const cursor = Number(ctx.query.cursor ?? 0);
  const wait = Number(ctx.query.wait ?? 25);
  ctx.type = 'application/json';
  const topic = topicParam(ctx.query.topic, topics);
  if (topic) {
    // The broadcast benchmark's poll: one topic from a position (nothing is sent to the mailbox).
    const found = topics.read(topic.name, topic.position, cursor);
    if (found || wait === 0) {
      ctx.body = found ?? emptyTopic(topic.name, topic.position, cursor);
      return;
    }
    await heldUntilWoken(ctx, wait, (wake) => topics.wait(topic.name, wake));
    ctx.body = topics.read(topic.name, topic.position, cursor) ?? emptyTopic(topic.name, topic.position, cursor);
    return;
  }
  const ready = mailboxes.read(user, cursor);
  if (ready || wait === 0) {
    ctx.body = ready ?? empty(cursor);
    return;
  }
  await heldUntilWoken(ctx, wait, (wake) => mailboxes.wait(user, wake));
  ctx.body = mailboxes.read(user, cursor) ?? empty(cursor);
});
router.post('/v1/messages', async (ctx) => {
  const user = userOf(ctx.get('Authorization'));
  if (!user) ctx.throw(401);
  let text = '';
  ctx.req.setEncoding('utf8');
  for await (const chunk of ctx.req) text += chunk;
  const input = JSON.parse(text);
  const result = input.topic ? topics.publish(user, input.topic, input.body) : mailboxes.publish(user, input.to, input.id, input.body);
  ctx.status = result.duplicate ? 200 : 201;
  ctx.body = result;
});
app.use(router.routes());

const server = http.createServer(app.callback());
server.keepAliveTimeout = 5_000;
server.requestTimeout = 0;
server.listen({ port: Number(process.argv[2] ?? 0), host: '127.0.0.1', backlog: 4096 }, () => {
  process.stdout.write(`listening on http://127.0.0.1:${server.address().port}\n`);
});
