import { Pool } from 'undici';
import { BenchRequestError, type BenchTarget, type GatewayTargetOptions, type PollOutcome } from '../../src/bench/target.js';

/**
 * The load tester's view of Nchan: `GET /sub/<user>` is a long-poll subscriber that resumes from
 * `Last-Modified` + `Etag` (Nchan's message id, its cursor), `POST /pub/<user>` publishes. Nchan
 * answers one message per response and has no short poll, so a `wait=0` poll (the tester's
 * mailbox settling) answers empty without a request. Nchan publishes are not idempotent: a
 * retried publish could store twice (the tester then reports a duplicate).
 */
export function createNchanTarget(options: GatewayTargetOptions): BenchTarget {
  const origin = options.url.origin;
  const pollPool = new Pool(origin, { connections: options.clientTokens.length + 4, pipelining: 1 });
  const publishPool = new Pool(origin, { connections: options.publishConnections, pipelining: 1 });
  const positions = options.clientUserIds.map(() => ({ lastModified: undefined as string | undefined, etag: undefined as string | undefined }));
  const ids = new Map<string, number>();
  let nextId = 1;

  return {
    pollWaitMaxS: undefined,
    async poll(client, cursor, waitS, signal): Promise<PollOutcome> {
      if (waitS === 0) return { messages: [], cursor, bytes: 0, superseded: false };
      const position = positions[client]!;
      const headers: Record<string, string> = {};
      if (position.lastModified) headers['if-modified-since'] = position.lastModified;
      if (position.etag !== undefined) headers['if-none-match'] = position.etag;
      let response;
      try {
        response = await pollPool.request({ method: 'GET', path: `/sub/${options.clientUserIds[client]}`, headers, signal, headersTimeout: 150_000 });
      } catch (error) {
        throw new BenchRequestError((error as { code?: string }).code ?? 'Error', (error as Error).message, true);
      }
      const text = await response.body.text();
      let bytes = Buffer.byteLength(text) + 17;
      for (const [name, value] of Object.entries(response.headers)) bytes += name.length + 4 + String(value).length;
      if (response.statusCode === 304 || response.statusCode === 408) return { messages: [], cursor, bytes, superseded: false };
      if (response.statusCode !== 200) throw new BenchRequestError(String(response.statusCode), text.slice(0, 200), response.statusCode >= 500);
      position.lastModified = String(response.headers['last-modified']);
      position.etag = String(response.headers.etag);
      const key = `${client}|${position.lastModified}|${position.etag}`;
      let serverId = ids.get(key);
      if (serverId === undefined) {
        serverId = nextId++;
        ids.set(key, serverId);
      }
      let seq: number | undefined;
      try {
        const body = JSON.parse(text) as { run?: string; seq?: number };
        if (body.run === options.runTag() && typeof body.seq === 'number') seq = body.seq;
      } catch {
        // Not ours.
      }
      return { messages: [{ serverId, seq }], cursor: cursor + 1, bytes, superseded: false };
    },
    async publish(client, _key, body) {
      let response;
      try {
        response = await publishPool.request({
          method: 'POST',
          path: `/pub/${options.clientUserIds[client]}`,
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
      } catch (error) {
        throw new BenchRequestError((error as { code?: string }).code ?? 'Error', (error as Error).message, true);
      }
      const text = await response.body.text();
      if (response.statusCode >= 300) throw new BenchRequestError(`publish ${response.statusCode}`, text.slice(0, 200), response.statusCode >= 500);
    },
    async close() {
      await Promise.all([pollPool.close(), publishPool.close()]);
    },
  };
}
