/**
 * Client-side cost of draining a backlog: each build (modern: fetch + p-retry; legacy: the ES5
 * bundle in a VM, over a fake XMLHttpRequest) polls N messages in pages of `limit` from an
 * in-memory gateway, against a floor measured in the same run: a bare loop that fetches the same
 * pages and parses them, with no cursor store, de-duplication, callbacks or retry machinery.
 * The ratio (client ÷ floor) is what the shared core costs on top of the transport.
 *
 *   npx tsx benchmarks/client-drain.ts [--messages 20000] [--limit 100] [--rounds 5]
 */
import { parseArgs } from 'node:util';
import { createLongPoller, memoryCursorStore } from '../src/client/index.js';
import { createFakeGateway } from '../test/client/support/fake-gateway.js';
import { loadLegacyClient } from '../test/client/support/legacy-vm.js';
import { fmt, report } from './lib.js';

const { values } = parseArgs({ options: { messages: { type: 'string', default: '20000' }, limit: { type: 'string', default: '100' }, rounds: { type: 'string', default: '5' } } });
const messages = Number(values.messages);
const limit = Number(values.limit);
const rounds = Number(values.rounds);

function backlog() {
  const gateway = createFakeGateway({ holdMs: 60_000 });
  for (let index = 0; index < messages; index++) gateway.deliver({ index, text: 'hello there' });
  return gateway;
}

type Drain = (gateway: ReturnType<typeof createFakeGateway>, done: () => void) => () => void;

const floor: Drain = (gateway, done) => {
  let cursor = 0;
  let stopped = false;
  void (async () => {
    while (!stopped && cursor < messages) {
      const response = await gateway.fetch(`http://gateway.test/v1/poll?cursor=${cursor}&wait=25&limit=${limit}`, { method: 'GET', headers: { Authorization: 'Bearer t' } });
      const body = JSON.parse(await response.text()) as { cursor: number };
      cursor = body.cursor;
    }
    done();
  })();
  return () => {
    stopped = true;
  };
};

const modern: Drain = (gateway, done) => {
  let received = 0;
  const poller = createLongPoller({
    url: 'http://gateway.test/',
    token: 't',
    limit,
    fetch: gateway.fetch,
    cursorStore: memoryCursorStore(),
    onMessages: (batch) => {
      received += batch.length;
      if (received === messages) done();
    },
  });
  void poller.start();
  return () => void poller.stop();
};

const legacy: Drain = (gateway, done) => {
  const { LongPoll } = loadLegacyClient(gateway);
  let received = 0;
  const poller = LongPoll.createLongPoller({
    url: 'http://gateway.test/',
    token: 't',
    limit,
    storageKey: false,
    onMessages: (batch: unknown[]) => {
      received += batch.length;
      if (received === messages) done();
    },
  });
  poller.start();
  return () => poller.stop();
};

async function measure(drain: Drain): Promise<{ wallMs: number; cpuMs: number }> {
  const gateway = backlog();
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  let stop = () => {};
  await new Promise<void>((resolve) => {
    stop = drain(gateway, resolve);
  });
  const wallMs = performance.now() - started;
  const cpu = process.cpuUsage(cpuBefore);
  stop();
  return { wallMs, cpuMs: (cpu.user + cpu.system) / 1000 };
}

const results: Record<string, { wallMs: number; cpuMs: number }> = {};
const median = (samples: number[]) => samples.sort((a, b) => a - b)[Math.floor(samples.length / 2)]!;
for (const [name, drain] of Object.entries({ floor, modern, legacy })) {
  await measure(drain); // warm-up
  const samples: Array<{ wallMs: number; cpuMs: number }> = [];
  // Interleaving would be fairer on a shared machine, but each drain keeps its own JIT state warm this way.
  for (let round = 0; round < rounds; round++) samples.push(await measure(drain));
  results[name] = { wallMs: median(samples.map((sample) => sample.wallMs)), cpuMs: median(samples.map((sample) => sample.cpuMs)) };
}

const perThousand = (ms: number) => (ms / messages) * 1000;
const rows = Object.entries(results).map(([name, { wallMs, cpuMs }]) => [
  name,
  fmt(wallMs, 0),
  fmt(perThousand(cpuMs), 2),
  fmt(cpuMs / results.floor!.cpuMs, 2),
]);
report('client-drain', ['drain', 'wall ms', 'CPU ms / 1,000 msgs', 'CPU ÷ floor'], rows, { messages, limit, rounds, results });
