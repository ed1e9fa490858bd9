import { ServerResponse, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';

/** The raw connection of an upgrade request, kept for the route that accepts it. */
interface PendingUpgrade {
  socket: Duplex;
  head: Buffer;
}

const pendingUpgrades = new WeakMap<IncomingMessage, PendingUpgrade>();

/** The socket and first bytes of a WebSocket upgrade request, or undefined for a plain request. */
export function pendingUpgradeOf(request: IncomingMessage): PendingUpgrade | undefined {
  return pendingUpgrades.get(request);
}

/**
 * A node:http server's 'upgrade' listener for the gateway. The upgrade request goes through the
 * same Koa app as every other request — request id, CORS, authentication, scope, validation and
 * the one error renderer — on a response bound to its socket; the route of `GET /v1/ws` then
 * takes the socket over (`pendingUpgradeOf`). Refused, it gets an ordinary HTTP error answer and
 * the socket is closed after it. Upgrades to any other path are answered 404 the same way.
 *
 * @example
 * server.on('upgrade', createUpgradeListener(gateway.callback));
 */
export function createUpgradeListener(callback: (request: IncomingMessage, response: ServerResponse) => unknown): (request: IncomingMessage, socket: Duplex, head: Buffer) => void {
  return function upgrade(request, socket, head) {
    socket.on('error', () => socket.destroy());
    pendingUpgrades.set(request, { socket, head });
    const response = new ServerResponse(request);
    response.shouldKeepAlive = false;
    response.assignSocket(socket as never);
    // An answer (a refusal) ends the connection: there is no HTTP keep-alive after an upgrade request.
    response.on('finish', () => {
      if (pendingUpgrades.has(request)) socket.destroy();
    });
    void callback(request, response);
  };
}

/** Called by the route that accepts the upgrade: the socket is the WebSocket's from now on. */
export function takeUpgrade(request: IncomingMessage, response: ServerResponse): PendingUpgrade | undefined {
  const pending = pendingUpgrades.get(request);
  if (!pending) return undefined;
  pendingUpgrades.delete(request);
  response.detachSocket(pending.socket as never);
  return pending;
}
