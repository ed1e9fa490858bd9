/**
 * The seed's three ways side by side: long polling, Server-Sent Events and WebSocket on one
 * gateway (a fresh process per mode), and the minimal `ws` holder as the WebSocket floor, through
 * the load tester (`bench --long 25 / --sse / --ws`) on one publish schedule. Per run: latency
 * percentiles, requests and bytes on the wire per message, server CPU per 1,000 deliveries, RSS
 * per connected client, lost / duplicated; then the targets:
 *
 * 1. WebSocket and SSE: server CPU per delivery ≤ 0.6 × long polling's (same run), and ≤ 1.5 × the
 *    minimal ws holder's;
 * 2. their p99 ≤ 3 × the ws holder's;
 * 3. RSS per WebSocket connection ≤ 1.2 × the ws holder's.
 *
 *   npm run build && eval "$(bash scripts/services.sh env)"
 *   npx tsx benchmarks/transports.ts [--clients 5000] [--rate 500] [--duration 20] [--pin] [--smoke]
 *     [--ways long,sse,ws,holder] [--cpu-prof <folder>]
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { runBench } from '../src/bench/command.js';
import { parseBenchArgs } from '../src/bench/options.js';
import type { ModeResult } from '../src/bench/runner.js';
import { cpuPinning, fmt, formatBackendCostTable, formatTable, meterDeliveries, openBackendCounters, PEER_NAMES, realServers, report, settledRssKiB, startPeer, type BackendCost, type PeerKind } from './lib.js';

const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '5000' },
    rate: { type: 'string', default: '500' },
    duration: { type: 'string', default: '20' },
    pin: { type: 'boolean', default: false },
    smoke: { type: 'boolean', default: false },
    ways: { type: 'string', default: 'long,sse,ws,holder' },
    'cpu-prof': { type: 'string' },
  },
});
const clients = values.smoke ? '40' : values.clients;
const rate = values.smoke ? '20' : values.rate;
const duration = values.smoke ? '1' : values.duration;

const TARGET_CPU_VS_LONG = 0.6;
const TARGET_CPU_VS_WS_HOLDER = 1.5;
const TARGET_P99_VS_WS_HOLDER = 3;
const TARGET_RSS_VS_WS_HOLDER = 1.2;

if (!realServers()) process.stderr.write('MYSQL_URL / REDIS_URL not set: the gateway runs on the embedded defaults, not MariaDB + Redis\n');
const secret = randomBytes(32).toString('hex');
const pinning = cpuPinning(values.pin);
const quiet = { stdout: process.stdout, stderr: process.stderr };

type Way = 'long' | 'sse' | 'ws';
const ALL_RUNS: Record<string, { kind: PeerKind; way: Way }> = {
  long: { kind: 'gateway', way: 'long' },
  sse: { kind: 'gateway', way: 'sse' },
  ws: { kind: 'gateway', way: 'ws' },
  holder: { kind: 'ws', way: 'ws' },
};
const RUNS = values.ways.split(',').map((name) => {
  const run = ALL_RUNS[name.trim()];
  if (!run) throw new Error(`Expected \`--ways\` to list some of ${Object.keys(ALL_RUNS).join(', ')}, got ${JSON.stringify(values.ways)}`);
  return run;
});
const counters = await openBackendCounters();
const MODE_ARGS: Record<Way, string[]> = { long: ['--long', '25'], sse: ['--long', 'none', '--sse'], ws: ['--long', 'none', '--ws'] };

interface Row {
  kind: PeerKind;
  way: Way;
  result: ModeResult;
  /** RSS growth from the idle process to the run's peak, per connected client. */
  rssKiBPerClient: number;
  /** MariaDB / Redis per delivered message (the holder: the servers' background only). */
  counters: BackendCost | null;
}

const rows: Row[] = [];
for (const { kind, way } of RUNS) {
  const profile = values['cpu-prof'] && kind === 'gateway' ? ['--cpu-prof', `--cpu-prof-dir=${values['cpu-prof']}`, `--cpu-prof-name=transports-${way}.cpuprofile`] : [];
  const peer = await startPeer(kind, secret, {}, profile);
  try {
    pinning.server(peer.pid);
    const idleKiB = await settledRssKiB(peer.pid, 5_000);
    const options = parseBenchArgs(
      ['--url', peer.url, '--secret', secret, '--clients', clients, '--rate', rate, '--duration', duration, '--short', 'none', ...MODE_ARGS[way], '--server-pid', String(peer.pid), '--drain-timeout', '30'],
      {},
    );
    options.progress = process.stderr.isTTY === true;
    const meter = meterDeliveries(counters);
    const bench = await runBench(options, quiet, undefined, meter.hooks);
    const result = bench.modes[0]!;
    const peakKiB = (result.server?.peakRssMiB ?? NaN) * 1024;
    rows.push({ kind, way, result, rssKiBPerClient: (peakKiB - idleKiB) / Number(clients), counters: meter.cost(result.delivered) });
    for (const warning of bench.warnings) process.stderr.write(`${peer.name} ${way}: warning: ${warning}\n`);
  } finally {
    await peer.stop();
  }
}

const cpuPer1000 = (result: ModeResult | undefined) => result?.server?.deliveryWindow?.cpuSecondsPer1000Messages ?? NaN;
const find = (kind: PeerKind, way: Way) => rows.find((row) => row.kind === kind && row.way === way);
const long = find('gateway', 'long');
const holder = find('ws', 'ws');
const faulty = (row: Row | undefined) => !row || row.result.lost + row.result.duplicated + row.result.misrouted > 0 || row.result.truncated !== null;
const targets = (['ws', 'sse'] as const).map((way) => {
  const row = find('gateway', way);
  const cpuVsLong = cpuPer1000(row?.result) / cpuPer1000(long?.result);
  const cpuVsHolder = cpuPer1000(row?.result) / cpuPer1000(holder?.result);
  const p99VsHolder = (row?.result.latencyMs.p99 ?? NaN) / (holder?.result.latencyMs.p99 ?? NaN);
  const sound = !faulty(row);
  return {
    way,
    cpuVsLong: { measured: cpuVsLong, target: TARGET_CPU_VS_LONG, met: sound && cpuVsLong <= TARGET_CPU_VS_LONG },
    cpuVsWsHolder: { measured: cpuVsHolder, target: TARGET_CPU_VS_WS_HOLDER, met: sound && cpuVsHolder <= TARGET_CPU_VS_WS_HOLDER },
    p99VsWsHolder: { measured: p99VsHolder, target: TARGET_P99_VS_WS_HOLDER, met: sound && p99VsHolder <= TARGET_P99_VS_WS_HOLDER },
  };
});
const wsRow = find('gateway', 'ws');
const rssVsHolder = (wsRow?.rssKiBPerClient ?? NaN) / (holder?.rssKiBPerClient ?? NaN);
const verdict = (met: boolean) => (met ? 'PASS' : 'MISS');

report(
  'transports',
  ['peer', 'way', 'delivered', 'lost+dup', 'p50 ms', 'p95 ms', 'p99 ms', 'req/msg', 'bytes/msg (wire)', 'srv CPU s/1000 msg', 'RSS KiB/client', 'gen CPU'],
  rows.map((row) => {
    const { result } = row;
    const wireBytes = result.bytesSent !== null && result.bytesReceived !== null && result.delivered > 0 ? (result.bytesSent + result.bytesReceived) / result.delivered : NaN;
    return [
      PEER_NAMES[row.kind],
      row.way,
      result.delivered,
      result.lost + result.duplicated + result.misrouted,
      fmt(result.latencyMs.p50, 2),
      fmt(result.latencyMs.p95, 2),
      fmt(result.latencyMs.p99, 2),
      fmt(result.requestsPerMessage, 2),
      fmt(wireBytes, 0),
      fmt(cpuPer1000(result), 3),
      fmt(row.rssKiBPerClient, 2),
      `${Math.round(result.loadGenerator.cpuShareOfOneCore * 100)}%${result.loadGeneratorBound ? '!' : ''}`,
    ];
  }),
  { clients: Number(clients), rate: Number(rate), durationS: Number(duration), pinning: pinning.description, results: rows, targets, rssVsWsHolder: { measured: rssVsHolder, target: TARGET_RSS_VS_WS_HOLDER } },
  [
    formatTable([
      ['target', 'measured', 'holds'],
      ...targets.flatMap((target) => [
        [`1. ${target.way}: CPU/1000 ÷ long polling (≤ ${TARGET_CPU_VS_LONG})`, fmt(target.cpuVsLong.measured, 2), verdict(target.cpuVsLong.met)],
        [`1. ${target.way}: CPU/1000 ÷ ws holder (≤ ${TARGET_CPU_VS_WS_HOLDER})`, fmt(target.cpuVsWsHolder.measured, 2), verdict(target.cpuVsWsHolder.met)],
        [`2. ${target.way}: p99 ÷ ws holder (≤ ${TARGET_P99_VS_WS_HOLDER})`, fmt(target.p99VsWsHolder.measured, 2), verdict(target.p99VsWsHolder.met)],
      ]),
      [`3. websocket: RSS per connection ÷ ws holder (≤ ${TARGET_RSS_VS_WS_HOLDER})`, fmt(rssVsHolder, 2), verdict(rssVsHolder <= TARGET_RSS_VS_WS_HOLDER)],
    ]),
    formatBackendCostTable(rows.map((row) => ({ what: `${PEER_NAMES[row.kind]} ${row.way}`, cost: row.counters }))),
    'bytes/msg (wire) = every request and answer of the mode (polls or the upgrade and frames, acks, publishes) per delivered message;\n' +
      'RSS KiB/client = (peak RSS during the run - RSS of the idle process) / clients.',
  ],
);
await counters?.close();
process.exit(rows.every((row) => !faulty(row)) ? 0 : 1);
