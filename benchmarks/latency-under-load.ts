/**
 * Benchmark 2, latency under load: N held long polls and a publisher at R msg/s, through the
 * load tester (`longpoll-gateway bench`'s engine), against the gateway on MariaDB + Redis and
 * against the bare node:http and minimal Koa holders, in the same run. Reports delivery latency
 * percentiles and server CPU seconds per 1,000 deliveries, with ratios to the peers.
 *
 *   npm run build && eval "$(bash scripts/services.sh env)"
 *   npx tsx benchmarks/latency-under-load.ts [--clients 5000] [--rate 1000] [--duration 20] [--peers gateway,bare,koa] [--smoke]
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { runBench } from '../src/bench/command.js';
import { parseBenchArgs } from '../src/bench/options.js';
import type { ModeResult } from '../src/bench/runner.js';
import { fmt, parseKinds, PEER_NAMES, realServers, report, startPeer, type PeerKind } from './lib.js';

const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '5000' },
    rate: { type: 'string', default: '1000' },
    duration: { type: 'string', default: '20' },
    peers: { type: 'string', default: 'gateway,bare,koa' },
    smoke: { type: 'boolean', default: false },
  },
});
const clients = values.smoke ? '40' : values.clients;
const rate = values.smoke ? '40' : values.rate;
const duration = values.smoke ? '1' : values.duration;
const kinds = parseKinds(values.peers, ['gateway', 'bare', 'koa']) as PeerKind[];
if (!realServers()) process.stderr.write('MYSQL_URL / REDIS_URL not set: the gateway runs on the embedded defaults, not MariaDB + Redis\n');
const secret = randomBytes(32).toString('hex');
const quiet = { stdout: process.stdout, stderr: process.stderr };

const rows: Array<{ peer: string; result: ModeResult }> = [];
for (const kind of kinds) {
  const peer = await startPeer(kind, secret);
  const name = 'backend' in peer && peer.backend ? `${peer.name} (${peer.backend})` : peer.name;
  try {
    const options = parseBenchArgs(
      ['--url', peer.url, '--secret', secret, '--clients', clients, '--rate', rate, '--duration', duration, '--short', 'none', '--long', '25', '--server-pid', String(peer.pid), '--drain-timeout', '30'],
      {},
    );
    options.progress = process.stderr.isTTY === true;
    const bench = await runBench(options, quiet);
    rows.push({ peer: name, result: bench.modes[0]! });
    for (const warning of bench.warnings) process.stderr.write(`${name}: warning: ${warning}\n`);
  } finally {
    await peer.stop();
  }
}

const find = (kind: PeerKind) => rows.find((row) => row.peer.startsWith(PEER_NAMES[kind]))?.result;
const gateway = find('gateway');
const bare = find('bare');
const koa = find('koa');
const cpuPer1000 = (result: ModeResult | undefined) => result?.server?.cpuSecondsPer1000Messages ?? NaN;
report(
  'latency-under-load',
  ['peer', 'delivered', 'lost+dup', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms', 'srv CPU s/1000 msg', 'srv peak RSS MiB', 'gen CPU', 'p99 / bare', 'CPU / Koa'],
  rows.map(({ peer, result }) => [
    peer,
    result.delivered,
    result.lost + result.duplicated + result.misrouted,
    fmt(result.latencyMs.p50, 2),
    fmt(result.latencyMs.p95, 2),
    fmt(result.latencyMs.p99, 2),
    fmt(result.latencyMs.max, 1),
    fmt(cpuPer1000(result), 3),
    fmt(result.server?.peakRssMiB),
    `${Math.round(result.loadGenerator.cpuShareOfOneCore * 100)}%${result.loadGeneratorBound ? '!' : ''}`,
    fmt(bare ? result.latencyMs.p99 / bare.latencyMs.p99 : NaN, 2),
    fmt(koa ? cpuPer1000(result) / cpuPer1000(koa) : NaN, 2),
  ]),
  {
    clients: Number(clients),
    rate: Number(rate),
    durationS: Number(duration),
    results: rows,
    targets: gateway
      ? {
          p50Ms: { measured: gateway.latencyMs.p50, target: 2, met: gateway.latencyMs.p50 <= 2 },
          p99VsBare: bare ? { measured: gateway.latencyMs.p99, bare: bare.latencyMs.p99, met: gateway.latencyMs.p99 <= bare.latencyMs.p99 } : null,
          cpuVsKoa: koa ? { measured: cpuPer1000(gateway), koa: cpuPer1000(koa), ratio: cpuPer1000(gateway) / cpuPer1000(koa), met: cpuPer1000(gateway) <= 2 * cpuPer1000(koa) } : null,
        }
      : null,
  },
);
process.exit(rows.every(({ result }) => result.lost + result.duplicated + result.misrouted === 0) ? 0 : 1);
