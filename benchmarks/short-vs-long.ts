/**
 * Benchmark 5, short vs long polling: the load tester's default comparison against the gateway
 * (MariaDB + Redis when MYSQL_URL / REDIS_URL are set), same clients and publish schedule for every
 * mode. Writes the tester's JSON and SVG next to the table.
 *
 *   npm run build && eval "$(bash scripts/services.sh env)"
 *   npx tsx benchmarks/short-vs-long.ts [--clients 1000] [--rate 100] [--duration 20] [--out benchmarks/results/short-vs-long] [--smoke]
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { runBench } from '../src/bench/command.js';
import { parseBenchArgs } from '../src/bench/options.js';
import { renderChart } from '../src/bench/svg.js';
import { fmt, report, startPeer } from './lib.js';

const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '1000' },
    rate: { type: 'string', default: '100' },
    duration: { type: 'string', default: '20' },
    short: { type: 'string', default: '500,1000,2000,5000' },
    long: { type: 'string', default: '5,25' },
    out: { type: 'string' },
    smoke: { type: 'boolean', default: false },
  },
});
const secret = randomBytes(32).toString('hex');
const peer = await startPeer('gateway', secret);
let bench;
try {
  const options = parseBenchArgs(
    [
      '--url', peer.url,
      '--secret', secret,
      '--clients', values.smoke ? '20' : values.clients,
      '--rate', values.smoke ? '20' : values.rate,
      '--duration', values.smoke ? '1' : values.duration,
      '--short', values.smoke ? '200,500' : values.short,
      '--long', values.smoke ? '1' : values.long,
      '--server-pid', String(peer.pid),
    ],
    {},
  );
  options.progress = process.stderr.isTTY === true;
  bench = await runBench(options, { stdout: process.stdout, stderr: process.stderr });
} finally {
  await peer.stop();
}
if (values.out) {
  mkdirSync(dirname(values.out), { recursive: true });
  writeFileSync(`${values.out}.json`, `${JSON.stringify(bench, null, 2)}\n`);
  const { clients, rate, durationS } = bench.options as { clients: number; rate: number; durationS: number };
  writeFileSync(
    `${values.out}.svg`,
    renderChart(bench.modes, {
      title: `Short vs long polling: ${clients} clients, ${rate} msg/s, ${durationS} s per mode`,
      subtitle: `longpoll-gateway on ${peer.backend} · ${bench.date.slice(0, 10)} · ${bench.machine.cpus} cores · Node ${bench.machine.node}`,
    }),
  );
}
for (const warning of bench.warnings) process.stderr.write(`warning: ${warning}\n`);
report(
  'short-vs-long',
  ['mode', 'delivered', 'lost+dup', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms', 'req/msg', 'bytes/msg', 'empty', 'errors', 'srv CPU s', 'srv CPU s/1000 msg', 'srv peak RSS MiB'],
  bench.modes.map((mode) => [
    mode.mode,
    mode.delivered,
    mode.lost + mode.duplicated + mode.misrouted,
    fmt(mode.latencyMs.p50),
    fmt(mode.latencyMs.p95),
    fmt(mode.latencyMs.p99),
    fmt(mode.latencyMs.max),
    fmt(mode.requestsPerMessage, 2),
    fmt(mode.bytesPerMessage, 0),
    mode.emptyResponses,
    mode.errors,
    fmt(mode.server?.cpuSeconds, 2),
    fmt(mode.server?.cpuSecondsPer1000Messages, 2),
    fmt(mode.server?.peakRssMiB),
  ]),
  { backend: peer.backend, options: bench.options, modes: bench.modes, warnings: bench.warnings },
);
process.exit(bench.modes.every((mode) => mode.lost + mode.duplicated + mode.misrouted === 0) ? 0 : 1);
