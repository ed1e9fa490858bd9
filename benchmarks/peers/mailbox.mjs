/**
 * The smallest mailbox that speaks the gateway's poll/publish API, shared by the bare node:http
 * and minimal Koa holders: in memory, no auth check beyond reading the token's `sub`, no
 * durability. It is the floor a Node process can reach, not a gateway.
 */
export function createMailboxes() {
  const boxes = new Map();
  const byKey = new Map();
  let nextId = 1;

  function box(user) {
    let found = boxes.get(user);
    if (!found) {
      found = { messages: [], messageIds: [], waiters: new Set() };
      boxes.set(user, found);
    }
    return found;
  }

  return {
    publish(sender, to, key, body) {
      const dedupKey = key === undefined ? undefined : `${sender}\u0000${key}`;
      const existing = dedupKey && byKey.get(dedupKey);
      if (existing) return { id: existing, duplicate: true };
      const id = nextId++;
      if (dedupKey) byKey.set(dedupKey, id);
      const target = box(to);
      target.messages.push(`{"id":${id},"from":${JSON.stringify(sender)},"body":${JSON.stringify(body)},"createdAt":"${new Date().toISOString()}"}`);
      target.messageIds.push(id);
      for (const wake of [...target.waiters]) wake();
      return { id, duplicate: false };
    },
    /** Drops what the cursor acknowledges, returns the rest as a response body (or undefined if empty). */
    read(user, cursor) {
      const target = boxes.get(user);
      if (!target || target.messages.length === 0) return undefined;
      while (target.messageIds.length > 0 && target.messageIds[0] <= cursor) {
        target.messageIds.shift();
        target.messages.shift();
      }
      if (target.messages.length === 0) return undefined;
      return `{"messages":[${target.messages.join(',')}],"cursor":${target.messageIds[target.messageIds.length - 1]}}`;
    },
    wait(user, wake) {
      const target = box(user);
      target.waiters.add(wake);
      return () => {
        target.waiters.delete(wake);
        if (target.waiters.size === 0 && target.messages.length === 0) boxes.delete(user);
      };
    },
  };
}

export function userOf(authorization) {
  const token = /^Bearer\s+(\S+)$/i.exec(authorization ?? '')?.[1];
  if (!token) return undefined;
  try {
    return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8')).sub;
  } catch {
    return undefined;
  }
}

export const empty = (cursor) => `{"messages":[],"cursor":${cursor}}`;

/**
 * Topics for the broadcast benchmark, as small as the mailboxes: one list per topic, each reader
 * holds its position (`seq`), a publish wakes every reader waiting on the topic. The page after a
 * position is built once and shared by every reader at that position, as the gateway does.
 */
export function createTopics() {
  const topics = new Map();
  let nextId = 1;

  function topicOf(name) {
    let found = topics.get(name);
    if (!found) {
      found = { messages: [], waiters: new Set(), pages: new Map() };
      topics.set(name, found);
    }
    return found;
  }

  return {
    publish(sender, name, body) {
      const topic = topicOf(name);
      const id = nextId++;
      const seq = topic.messages.length + 1;
      topic.messages.push(`{"id":${id},"from":${JSON.stringify(sender)},"body":${JSON.stringify(body)},"createdAt":"${new Date().toISOString()}","topic":${JSON.stringify(name)},"seq":${seq}}`);
      topic.pages.clear();
      for (const wake of [...topic.waiters]) wake();
      return { id, seq, duplicate: false };
    },
    /** The topic's head (for "from now"). */
    head(name) {
      return topicOf(name).messages.length;
    },
    /** The answer for a reader at `position` with its mailbox `cursor`, or undefined when nothing is new. */
    read(name, position, cursor) {
      const topic = topicOf(name);
      if (topic.messages.length <= position) return undefined;
      let page = topic.pages.get(position);
      if (page === undefined) topic.pages.set(position, (page = topic.messages.slice(position).join(',')));
      return `{"messages":[${page}],"cursor":${cursor},"positions":{${JSON.stringify(name)}:${topic.messages.length}}}`;
    },
    wait(name, wake) {
      const topic = topicOf(name);
      topic.waiters.add(wake);
      return () => topic.waiters.delete(wake);
    },
  };
}

/** `topic=<name>@<position>` or `topic=<name>` (from now, the head): one topic per poll in the benchmark. */
export function topicParam(value, topics) {
  if (!value) return undefined;
  const at = value.indexOf('@');
  return at === -1 ? { name: value, position: topics.head(value) } : { name: value.slice(0, at), position: Number(value.slice(at + 1)) };
}

export const emptyTopic = (name, position, cursor) => `{"messages":[],"cursor":${cursor},"positions":{${JSON.stringify(name)}:${position}}}`;

/** A JSON answer of the node:http holders, never cached. */
export function sendJson(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(body);
}

/**
 * GET /v1/poll of a mailbox on bare node:http: answered at once when something is there (or
 * `wait=0`), else held until a publish wakes it, `wait` runs out or the client goes away.
 */
export function answerMailboxPoll(res, mailboxes, user, cursor, wait) {
  const ready = mailboxes.read(user, cursor);
  if (ready || wait === 0) return sendJson(res, 200, ready ?? empty(cursor));
  let timer;
  const finish = () => {
    clearTimeout(timer);
    unsubscribe();
    res.off('close', finish);
    if (!res.writableEnded && !res.destroyed) sendJson(res, 200, mailboxes.read(user, cursor) ?? empty(cursor));
  };
  const unsubscribe = mailboxes.wait(user, finish);
  timer = setTimeout(finish, wait * 1000);
  res.on('close', finish);
}
