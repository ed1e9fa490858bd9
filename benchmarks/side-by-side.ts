/**
 * Benchmark 4, side by side: the same load generator and load (N long-polling clients, R msg/s,
 * same publish schedule) against the gateway on MariaDB + Redis, Nchan (nginx, long-poll
 * subscriber), Socket.IO with only its polling transport, and a bare node:http holder (the floor
 * for a Node process), one after another in the same run. Ratios to the bare holder.
 *
 *   npm run build && eval "$(bash scripts/services.sh env)"
 *   npx tsx benchmarks/side-by-side.ts [--clients 2000] [--rate 200] [--duration 20] [--peers gateway,nchan,socketio,bare] [--smoke]
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { runBench } from '../src/bench/command.js';
import { parseBenchArgs } from '../src/bench/options.js';
import type { ModeResult } from '../src/bench/runner.js';
import { createGatewayTarget } from '../src/bench/target.js';
import { fmt, parseKinds, PEER_NAMES, report, startPeer, type PeerKind } from './lib.js';
import { createNchanTarget } from './peers/nchan-target.js';
import { createSocketIoTarget } from './peers/socketio-target.js';

const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '2000' },
    rate: { type: 'string', default: '200' },
    duration: { type: 'string', default: '20' },
    peers: { type: 'string', default: 'gateway,nchan,socketio,bare' },
    smoke: { type: 'boolean', default: false },
  },
});
const clients = values.smoke ? '20' : values.clients;
const rate = values.smoke ? '20' : values.rate;
const duration = values.smoke ? '1' : values.duration;
const kinds = parseKinds(values.peers, ['gateway', 'nchan', 'socketio', 'bare']) as PeerKind[];
const secret = randomBytes(32).toString('hex');

interface Row {
  peer: string;
  result: ModeResult | undefined;
  requests: number | null;
  bytes: number | null;
  error?: string;
}
const rows: Row[] = [];
for (const kind of kinds) {
  let peer;
  try {
    peer = await startPeer(kind, secret);
  } catch (error) {
    const message = (error as Error).message.split('\n')[0]!;
    process.stderr.write(`${PEER_NAMES[kind]} cannot run here: ${message}\n`);
    rows.push({ peer: PEER_NAMES[kind], result: undefined, requests: null, bytes: null, error: message });
    continue;
  }
  const name = 'backend' in peer && peer.backend ? `${peer.name} (${peer.backend})` : peer.name;
  try {
    const options = parseBenchArgs(
      ['--url', peer.url, '--secret', secret, '--clients', clients, '--rate', rate, '--duration', duration, '--short', 'none', '--long', '25', '--server-pid', String(peer.pid), '--drain-timeout', '30'],
      {},
    );
    options.progress = process.stderr.isTTY === true;
    const io = { stdout: process.stdout, stderr: process.stderr };
    let statsBefore = { requests: 0, bytes: 0 };
    const bench = await runBench(options, io, (target) => {
      if (kind === 'nchan') return createNchanTarget(target);
      if (kind === 'socketio') {
        const socketTarget = createSocketIoTarget(target);
        // Connect every client before the first poll (the tester's settling poll).
        const connected = socketTarget.connect().then(async () => {
          statsBefore = (await (await fetch(`${peer.url}/stats`)).json()) as typeof statsBefore;
        });
        const poll = socketTarget.poll.bind(socketTarget);
        socketTarget.poll = async (...args) => {
          await connected;
          return poll(...args);
        };
        return socketTarget;
      }
      return createGatewayTarget(target);
    });
    const result = bench.modes[0]!;
    let requests: number | null = result.pollRequests;
    let bytes: number | null = result.responseBytes;
    if (kind === 'socketio') {
      const after = (await (await fetch(`${peer.url}/stats`)).json()) as typeof statsBefore;
      requests = after.requests - statsBefore.requests;
      bytes = after.bytes - statsBefore.bytes;
    }
    rows.push({ peer: name, result, requests, bytes });
    for (const warning of bench.warnings) process.stderr.write(`${name}: warning: ${warning}\n`);
  } catch (error) {
    process.stderr.write(`${name} failed: ${(error as Error).stack}\n`);
    rows.push({ peer: name, result: undefined, requests: null, bytes: null, error: (error as Error).message });
  } finally {
    await peer.stop();
  }
}

const bare = rows.find((row) => row.peer.startsWith(PEER_NAMES.bare))?.result;
const cpu = (result: ModeResult | undefined) => result?.server?.cpuSecondsPer1000Messages ?? NaN;
report(
  'side-by-side',
  ['peer', 'delivered', 'lost+dup', 'p50 ms', 'p99 ms', 'max ms', 'req/msg', 'bytes/msg', 'srv CPU s/1000', 'srv peak RSS MiB', 'p99 ÷ bare', 'CPU ÷ bare', 'RSS ÷ bare'],
  rows.map(({ peer, result, requests, bytes, error }) =>
    result
      ? [
          peer,
          result.delivered,
          result.lost + result.duplicated + result.misrouted,
          fmt(result.latencyMs.p50, 2),
          fmt(result.latencyMs.p99, 2),
          fmt(result.latencyMs.max, 1),
          fmt(requests === null ? NaN : requests / result.delivered, 2),
          fmt(bytes === null ? NaN : bytes / result.delivered, 0),
          fmt(cpu(result), 3),
          fmt(result.server?.peakRssMiB),
          fmt(bare ? result.latencyMs.p99 / bare.latencyMs.p99 : NaN, 2),
          fmt(bare ? cpu(result) / cpu(bare) : NaN, 2),
          fmt(bare && result.server && bare.server ? result.server.peakRssMiB / bare.server.peakRssMiB : NaN, 2),
        ]
      : [`${peer} (cannot run: ${error})`, '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-'],
  ),
  { clients: Number(clients), rate: Number(rate), durationS: Number(duration), results: rows },
);
process.exit(0);
