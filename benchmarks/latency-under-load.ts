/**
 * Benchmark 2, latency under load: N held long polls and a publisher at R msg/s, through the
 * load tester (`longpoll-gateway bench`'s engine), against the gateway on MariaDB + Redis and
 * against the bare node:http and minimal Koa holders, in the same run, at one or more rates
 * (every peer at every rate; a fresh process per run). Reports delivery latency percentiles,
 * server CPU seconds per 1,000 deliveries and, for the gateway, SQL statements and Redis commands
 * per delivered message; then, per rate, whether the targets hold:
 *
 * - gateway p99 ≤ 3 × the bare node:http holder's p99;
 * - gateway CPU per 1,000 deliveries ≤ 1.5 × the minimal Koa holder's;
 *
 * and the highest rate where both do.
 *
 *   npm run build && eval "$(bash scripts/services.sh env)"
 *   npx tsx benchmarks/latency-under-load.ts [--clients 5000] [--rate 500 | --rates 500,1000,1500] [--duration 20]
 *     [--peers gateway,bare,koa,durable] [--pin] [--smoke]
 *
 * `durable` adds the durable floor (benchmarks/peers/durable-holder.mjs: node:http writing each
 * publish with one single-row mysql2 INSERT, autocommit, then waking the poll in process) and the
 * gateway's CPU and p99 ÷ that floor; it needs MYSQL_URL.
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { runBench } from '../src/bench/command.js';
import { parseBenchArgs } from '../src/bench/options.js';
import type { ModeResult } from '../src/bench/runner.js';
import {
  cpuPinning,
  fmt,
  formatBackendCostTable,
  formatTable,
  meterDeliveries,
  openBackendCounters,
  parseKinds,
  PEER_NAMES,
  realServers,
  report,
  startPeer,
  type BackendCost,
  type PeerKind,
} from './lib.js';

const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '5000' },
    rate: { type: 'string', default: '500' },
    rates: { type: 'string' },
    duration: { type: 'string', default: '20' },
    peers: { type: 'string', default: 'gateway,bare,koa' },
    pin: { type: 'boolean', default: false },
    smoke: { type: 'boolean', default: false },
  },
});
const clients = values.smoke ? '40' : values.clients;
const rates = (values.smoke ? '20,40' : (values.rates ?? values.rate)).split(',').map((rate) => rate.trim());
if (rates.some((rate) => !(Number(rate) > 0)) || new Set(rates.map(Number)).size !== rates.length) {
  throw new Error(`Expected \`--rates\` to be distinct positive numbers, got ${JSON.stringify(values.rates ?? values.rate)}`);
}
rates.sort((a, b) => Number(a) - Number(b));
const duration = values.smoke ? '1' : values.duration;
// `durable`: the durable floor (node:http + one mysql2 INSERT per publish), on MariaDB only.
const kinds = parseKinds(values.peers, ['gateway', 'bare', 'koa', 'durable']) as PeerKind[];

/** Target 1 of the performance issue, both measured against peers in this run. */
const TARGET_P99_VS_BARE = 3;
const TARGET_CPU_VS_KOA = 1.5;

if (!realServers()) process.stderr.write('MYSQL_URL / REDIS_URL not set: the gateway runs on the embedded defaults, not MariaDB + Redis\n');
const secret = randomBytes(32).toString('hex');
const quiet = { stdout: process.stdout, stderr: process.stderr };
const pinning = cpuPinning(values.pin);
const counters = await openBackendCounters();

interface Row {
  rate: number;
  kind: PeerKind;
  peer: string;
  result: ModeResult;
  /** MariaDB / Redis per delivered message (holders: the servers' background, nothing of theirs). */
  counters: BackendCost | null;
}

const rows: Row[] = [];
try {
  for (const rate of rates) {
    for (const kind of kinds) {
      const peer = await startPeer(kind, secret);
      const name = 'backend' in peer && peer.backend ? `${peer.name} (${peer.backend})` : peer.name;
      try {
        pinning.server(peer.pid);
        const meter = meterDeliveries(counters);
        const options = parseBenchArgs(
          ['--url', peer.url, '--secret', secret, '--clients', clients, '--rate', rate, '--duration', duration, '--short', 'none', '--long', '25', '--server-pid', String(peer.pid), '--drain-timeout', '30'],
          {},
        );
        options.progress = process.stderr.isTTY === true;
        const bench = await runBench(options, quiet, undefined, meter.hooks);
        const result = bench.modes[0]!;
        rows.push({ rate: Number(rate), kind, peer: name, result, counters: meter.cost(result.delivered) });
        for (const warning of bench.warnings) process.stderr.write(`${name} at ${rate} msg/s: warning: ${warning}\n`);
      } finally {
        await peer.stop();
      }
    }
  }
} finally {
  await counters?.close();
}

/** CPU seconds per 1,000 deliveries, from the first publish to the end of the drain. */
const cpuPer1000 = (result: ModeResult | undefined) => result?.server?.deliveryWindow?.cpuSecondsPer1000Messages ?? NaN;
const faulty = (result: ModeResult) => result.lost + result.duplicated + result.misrouted > 0 || result.truncated !== null;

const byRate = rates.map(Number).map((rate) => {
  const find = (kind: PeerKind) => rows.find((row) => row.rate === rate && row.kind === kind)?.result;
  const gateway = find('gateway');
  const bare = find('bare');
  const koa = find('koa');
  const p99Ratio = gateway && bare ? gateway.latencyMs.p99 / bare.latencyMs.p99 : NaN;
  const cpuRatio = gateway && koa ? cpuPer1000(gateway) / cpuPer1000(koa) : NaN;
  // A run that lost messages or stopped early meets nothing, whatever its percentiles say.
  const sound = gateway !== undefined && !faulty(gateway);
  const p99Met = sound && p99Ratio <= TARGET_P99_VS_BARE;
  const cpuMet = sound && cpuRatio <= TARGET_CPU_VS_KOA;
  return {
    rate,
    p99VsBare: gateway && bare ? { measured: p99Ratio, gatewayP99Ms: gateway.latencyMs.p99, bareP99Ms: bare.latencyMs.p99, target: TARGET_P99_VS_BARE, met: p99Met } : null,
    cpuVsKoa: gateway && koa ? { measured: cpuRatio, gatewayCpuSPer1000: cpuPer1000(gateway), koaCpuSPer1000: cpuPer1000(koa), target: TARGET_CPU_VS_KOA, met: cpuMet } : null,
    bothMet: gateway && bare && koa ? p99Met && cpuMet : null,
    gatewayFellBehind: gateway ? gateway.backpressureWaits > 0 : null,
  };
});
const metRates = byRate.filter((entry) => entry.bothMet === true).map((entry) => entry.rate);
const highestRateBothMet = metRates.length > 0 ? Math.max(...metRates) : null;
// "Highest" reads as "up to": say so when a lower rate failed (noise, or a real non-monotonic cost).
const gaps = highestRateBothMet === null ? [] : byRate.filter((entry) => entry.rate < highestRateBothMet && entry.bothMet === false).map((entry) => entry.rate);

const peerRatio = (row: Row) => {
  const same = (kind: PeerKind) => rows.find((other) => other.rate === row.rate && other.kind === kind)?.result;
  const bare = same('bare');
  const koa = same('koa');
  const durable = same('durable');
  return {
    p99: bare ? row.result.latencyMs.p99 / bare.latencyMs.p99 : NaN,
    cpu: koa ? cpuPer1000(row.result) / cpuPer1000(koa) : NaN,
    cpuVsDurable: durable ? cpuPer1000(row.result) / cpuPer1000(durable) : NaN,
    p99VsDurable: durable ? row.result.latencyMs.p99 / durable.latencyMs.p99 : NaN,
  };
};
const verdict = (met: boolean | null | undefined) => (met === null || met === undefined ? '-' : met ? 'yes' : 'NO');
const notes = [
  formatTable([
    ['msg/s', `p99 ÷ bare (≤ ${TARGET_P99_VS_BARE})`, `CPU/1000 ÷ Koa (≤ ${TARGET_CPU_VS_KOA})`, 'both hold', 'gateway fell behind'],
    ...byRate.map((entry) => [
      String(entry.rate),
      `${fmt(entry.p99VsBare?.measured, 2)} ${verdict(entry.p99VsBare?.met)}`,
      `${fmt(entry.cpuVsKoa?.measured, 2)} ${verdict(entry.cpuVsKoa?.met)}`,
      verdict(entry.bothMet),
      verdict(entry.gatewayFellBehind),
    ]),
  ]),
  `highest rate where both hold: ${highestRateBothMet === null ? `none of ${rates.join(', ')} msg/s` : `${highestRateBothMet} msg/s`}` +
    (gaps.length > 0 ? ` (but not at ${gaps.join(', ')} msg/s)` : '') +
    (kinds.length < 3 ? ' (needs --peers gateway,bare,koa)' : ''),
  formatBackendCostTable(rows.map((row) => ({ what: `${row.rate} msg/s ${row.kind === 'gateway' ? 'gateway' : PEER_NAMES[row.kind]}`, cost: row.counters }))),
];

report(
  'latency-under-load',
  ['peer', 'msg/s', 'delivered', 'lost+dup', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms', 'srv CPU s/1000 msg', '(whole run)', 'srv peak RSS MiB', 'gen CPU', 'p99 / bare', 'CPU / Koa', 'CPU / durable', 'p99 / durable', 'SQL/msg', 'Redis/msg'],
  rows.map((row) => {
    const { result } = row;
    const ratios = peerRatio(row);
    return [
      row.peer,
      row.rate,
      result.delivered,
      result.lost + result.duplicated + result.misrouted,
      fmt(result.latencyMs.p50, 2),
      fmt(result.latencyMs.p95, 2),
      fmt(result.latencyMs.p99, 2),
      fmt(result.latencyMs.max, 1),
      fmt(cpuPer1000(result), 3),
      fmt(result.server?.cpuSecondsPer1000Messages, 3),
      fmt(result.server?.peakRssMiB),
      `${Math.round(result.loadGenerator.cpuShareOfOneCore * 100)}%${result.loadGeneratorBound ? '!' : ''}`,
      fmt(ratios.p99, 2),
      fmt(ratios.cpu, 2),
      fmt(ratios.cpuVsDurable, 2),
      fmt(ratios.p99VsDurable, 2),
      row.kind === 'gateway' || row.kind === 'durable' ? fmt(row.counters?.sqlStatementsPerMessage, 2) : '-',
      row.kind === 'gateway' ? fmt(row.counters?.redisCommandsPerMessage, 2) : '-',
    ];
  }),
  {
    clients: Number(clients),
    rates: rates.map(Number),
    durationS: Number(duration),
    pinning: pinning.description,
    cpuPer1000: 'server CPU from the first publish to the end of the drain (result.server.deliveryWindow); the whole run, polls opened and closed included, is result.server.cpuSecondsPer1000Messages',
    results: rows,
    targets: {
      p99VsBare: TARGET_P99_VS_BARE,
      cpuVsKoa: TARGET_CPU_VS_KOA,
      byRate,
      highestRateBothMet,
    },
  },
  notes,
);
process.exit(rows.every(({ result }) => result.lost + result.duplicated + result.misrouted === 0) ? 0 : 1);
