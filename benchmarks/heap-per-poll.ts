/**
 * Profile for benchmark 1: where the memory of a held poll goes. Starts a peer (the built gateway
 * or the minimal Koa holder) with `--heapsnapshot-signal`, takes a heap snapshot idle and with N
 * held polls, and prints the JS heap growth per held poll by object kind (constructor, closure,
 * string, …), next to the RSS growth per poll (the difference is outside the JS heap: sockets,
 * HTTP parsers, malloc).
 *
 *   npm run build && eval "$(bash scripts/services.sh env)"
 *   npx tsx benchmarks/heap-per-poll.ts [--peer gateway|koa|bare] [--polls 5000] [--top 25] [--smoke]
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createTokenIssuer } from '../src/auth/tokens.js';
import { BIN } from '../test/support/process.js';
import { benchDatabase, fmt, realServers, report, rssKiB, settledRssKiB, sleep } from './lib.js';

const { values } = parseArgs({
  options: {
    peer: { type: 'string', default: 'gateway' },
    polls: { type: 'string', default: '5000' },
    top: { type: 'string', default: '25' },
    smoke: { type: 'boolean', default: false },
  },
});
const polls = values.smoke ? 100 : Number(values.polls);
const peerKind = values.peer;
if (!['gateway', 'koa', 'bare'].includes(peerKind)) throw new Error('--peer must be gateway, koa or bare');
const secret = randomBytes(32).toString('hex');
const issuer = createTokenIssuer({ secret });
const tokens = await Promise.all(Array.from({ length: polls }, (_, i) => issuer.issue(`heap-${i}`)));
const dir = mkdtempSync(join(tmpdir(), 'lpg-heap-'));
const database = peerKind === 'gateway' && realServers() ? await benchDatabase() : undefined;

const args = peerKind === 'gateway' ? [BIN, 'start'] : [fileURLToPath(new URL(`./peers/${peerKind}-holder.mjs`, import.meta.url)), '0'];
const child = spawn(process.execPath, ['--heapsnapshot-signal=SIGUSR2', ...args], {
  cwd: dir,
  env: {
    PATH: process.env.PATH ?? '',
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'error',
    GATEWAY_JWT_SECRET: secret,
    POLL_WAIT_MAX_S: '300',
    GATEWAY_WORKERS: '1',
    PUBLISH_RATE_PER_USER: '0',
    PUBLISH_RATE_PER_IP: '0',
    MAX_HELD_POLLS: '60000',
    ...(database ? database.env : { SQLITE_FILE: ':memory:' }),
  },
  stdio: ['ignore', 'pipe', 'pipe'],
});
process.once('exit', () => child.kill('SIGKILL'));
let output = '';
child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
const url = await new Promise<string>((resolve, reject) => {
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString();
    const match = /listening on (http:\/\/[\d.:]+)/.exec(output);
    if (match) resolve(match[1]!);
  });
  child.once('exit', () => reject(new Error(output)));
});
const { port } = new URL(url);

async function snapshot(): Promise<string> {
  const before = new Set(readdirSync(dir));
  child.kill('SIGUSR2');
  await sleep(200);
  // The snapshot is written on the main thread: once the process answers again, the file is complete.
  // A fresh connection each try: a kept-alive one may have just been closed by the server.
  for (let attempt = 1; ; attempt += 1) {
    try {
      await fetch(`${url}/healthz`, { headers: { connection: 'close' } });
      break;
    } catch (error) {
      if (attempt >= 5) throw error;
      await sleep(200);
    }
  }
  const fresh = readdirSync(dir).filter((name) => name.endsWith('.heapsnapshot') && !before.has(name));
  if (fresh.length === 0) throw new Error('no heap snapshot appeared');
  return join(dir, fresh[0]!);
}

/** Self size by object kind: `object Foo`, `closure bar`, `string`, `code`, … */
function aggregate(path: string): Map<string, { bytes: number; count: number }> {
  const snapshot = JSON.parse(readFileSync(path, 'utf8')) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
    nodes: number[];
    strings: string[];
  };
  const fields = snapshot.snapshot.meta.node_fields;
  const types = snapshot.snapshot.meta.node_types[0];
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  const totals = new Map<string, { bytes: number; count: number }>();
  for (let i = 0; i < snapshot.nodes.length; i += width) {
    const type = types[snapshot.nodes[i + typeAt]!]!;
    const name = snapshot.strings[snapshot.nodes[i + nameAt]!]!;
    const key = type === 'object' || type === 'closure' || type === 'native' ? `${type} ${name.slice(0, 60)}` : type === 'string' || type === 'concatenated string' || type === 'sliced string' ? 'strings' : type;
    const entry = totals.get(key) ?? { bytes: 0, count: 0 };
    entry.bytes += snapshot.nodes[i + sizeAt]!;
    entry.count += 1;
    totals.set(key, entry);
  }
  return totals;
}

try {
  await sleep(1_000);
  const idleRss = await settledRssKiB(child.pid!, 3_000);
  const idle = aggregate(await snapshot());
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  const requests = tokens.map((token, i) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/v1/poll?wait=300', agent, headers: { Authorization: `Bearer ${token}` } }, (res) => {
      process.stderr.write(`poll ${i} answered early: ${res.statusCode}\n`);
      res.resume();
    });
    req.on('error', () => {});
    return req;
  });
  await sleep(Math.max(2_000, polls / 2));
  const heldRss = await settledRssKiB(child.pid!);
  const held = aggregate(await snapshot());
  const rows: Array<[string, number, number]> = [];
  let heapGrowth = 0;
  for (const [key, entry] of held) {
    const before = idle.get(key) ?? { bytes: 0, count: 0 };
    heapGrowth += entry.bytes - before.bytes;
    rows.push([key, (entry.bytes - before.bytes) / polls, (entry.count - before.count) / polls]);
  }
  for (const [key, entry] of idle) if (!held.has(key)) heapGrowth -= entry.bytes;
  rows.sort((a, b) => b[1] - a[1]);
  const top = rows.slice(0, Number(values.top));
  for (const req of requests) req.destroy();
  agent.destroy();
  report(
    'heap-per-poll',
    ['object kind', 'bytes per held poll', 'objects per held poll'],
    [
      ['RSS growth (all memory)', fmt(((heldRss - idleRss) * 1024) / polls, 0), ''],
      ['JS heap growth (snapshot)', fmt(heapGrowth / polls, 0), ''],
      ...top.map(([key, bytes, count]) => [key, fmt(bytes, 0), fmt(count, 2)]),
    ],
    { peer: peerKind, polls, rssBytesPerPoll: ((heldRss - idleRss) * 1024) / polls, heapBytesPerPoll: heapGrowth / polls, top: top.map(([kind, bytes, count]) => ({ kind, bytes, count })) },
  );
} finally {
  child.kill('SIGKILL');
  await database?.drop();
  rmSync(dir, { recursive: true, force: true });
}
void rssKiB;
process.exit(0);
