import { io, type Socket } from 'socket.io-client';
import { Pool } from 'undici';
import { BenchRequestError, type BenchTarget, type GatewayTargetOptions, type PollOutcome, type ReceivedMessage } from '../../src/bench/target.js';

/**
 * The load tester's view of Socket.IO (polling transport only): every client is a socket.io-client
 * connection that pushes messages into a queue; a tester "poll" takes what the queue holds, or
 * waits for it. The HTTP requests and bytes are counted by the server (`GET /stats`), because the
 * client library makes its own requests.
 */
export function createSocketIoTarget(options: GatewayTargetOptions): BenchTarget & { connect(): Promise<void> } {
  const publishPool = new Pool(options.url.origin, { connections: options.publishConnections, pipelining: 1 });
  const queues: ReceivedMessage[][] = options.clientTokens.map(() => []);
  const waiting: Array<(() => void) | undefined> = options.clientTokens.map(() => undefined);
  const sockets: Socket[] = [];

  return {
    pollWaitMaxS: undefined,
    async connect() {
      await Promise.all(
        options.clientTokens.map(
          (token, client) =>
            new Promise<void>((resolve, reject) => {
              const socket = io(options.url.origin, { transports: ['polling'], auth: { token }, reconnection: true, forceNew: true });
              sockets.push(socket);
              socket.on('message', (message: { id: number; body: { run?: string; seq?: number } }) => {
                const ours = message.body?.run === options.runTag() && typeof message.body.seq === 'number';
                queues[client]!.push({ serverId: message.id, seq: ours ? message.body.seq : undefined });
                waiting[client]?.();
              });
              socket.once('connect', () => resolve());
              socket.once('connect_error', reject);
            }),
        ),
      );
    },
    async poll(client, cursor, waitS, signal): Promise<PollOutcome> {
      if (queues[client]!.length === 0 && waitS > 0 && !signal.aborted) {
        await new Promise<void>((resolve) => {
          const done = () => {
            clearTimeout(timer);
            signal.removeEventListener('abort', done);
            waiting[client] = undefined;
            resolve();
          };
          const timer = setTimeout(done, waitS * 1000);
          signal.addEventListener('abort', done);
          waiting[client] = done;
        });
      }
      const messages = queues[client]!.splice(0);
      return { messages, cursor: cursor + messages.length, bytes: 0, superseded: false };
    },
    async publish(client, key, body) {
      let response;
      try {
        response = await publishPool.request({
          method: 'POST',
          path: '/v1/messages',
          headers: { authorization: `Bearer ${options.publisherToken}`, 'content-type': 'application/json' },
          body: JSON.stringify({ to: options.clientUserIds[client], id: key, body }),
        });
      } catch (error) {
        throw new BenchRequestError((error as { code?: string }).code ?? 'Error', (error as Error).message, true);
      }
      await response.body.text();
      if (response.statusCode >= 300) throw new BenchRequestError(`publish ${response.statusCode}`, '', response.statusCode >= 500);
    },
    async close() {
      for (const socket of sockets) socket.disconnect();
      await publishPool.close();
    },
  };
}
