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
