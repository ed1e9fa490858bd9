import { describe, expect, it } from 'vitest';
import { listeningSocketInodes } from '../../src/bench/proc.js';
import { formatModeTable, formatServerCaption, serverLabel, thresholdFailures, warningsFor } from '../../src/bench/report.js';
import type { ModeResult } from '../../src/bench/runner.js';
import type { ServerInfo } from '../../src/bench/server-info.js';
import { renderChart } from '../../src/bench/svg.js';

function result(overrides: Partial<ModeResult>): ModeResult {
  return {
    mode: 'short 1s',
    kind: 'short',
    intervalMs: 1000,
    waitS: null,
    clients: 10,
    rate: 5,
    durationS: 2,
    wallSeconds: 3,
    publishSeconds: 2,
    deliverySeconds: 2.5,
    truncated: null,
    published: 10,
    publishFailed: 0,
    delivered: 10,
    lost: 0,
    duplicated: 0,
    redelivered: 0,
    misrouted: 0,
    unknown: 0,
    latencyMs: { count: 10, p50: 480, p95: 950, p99: 990, max: 995, mean: 500 },
    pollRequests: 30,
    emptyResponses: 20,
    supersededResponses: 0,
    errors: 0,
    errorsByLabel: {},
    publishErrors: 0,
    publishBatch: 1,
    publishRequests: 10,
    responseBytes: 9000,
    requestsPerMessage: 3,
    bytesPerMessage: 900,
    rampS: 0,
    requestsPerSecond: 13.3,
    bytesSent: 12_288,
    bytesReceived: 30_720,
    bytesSentPerSecond: 4096,
    bytesReceivedPerSecond: 10_240,
    latencySeries: [
      { second: 0, count: 4, p50: 400, p99: 900 },
      { second: 1, count: 0, p50: null, p99: null },
      { second: 2, count: 6, p50: 500, p99: 990 },
      { second: 3, count: 0, p50: null, p99: null },
    ],
    publishLagMaxMs: 1,
    backpressureWaits: 0,
    server: null,
    loadGenerator: { cpuSeconds: 0.3, cpuShareOfOneCore: 0.1, eventLoopDelayP99Ms: 2 },
    loadGeneratorBound: false,
    ...overrides,
  };
}

describe('bench output', () => {
  const results = [
    result({}),
    result({ mode: 'long wait=25s', kind: 'long', intervalMs: null, waitS: 25, latencyMs: { count: 10, p50: 2.5, p95: 4, p99: 6, max: 7, mean: 3 }, requestsPerMessage: 1 }),
  ];

  it('prints one table row per mode with latency percentiles and requests per message', () => {
    const lines = formatModeTable(results).split('\n');
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(/^mode\s+delivered\s+p50 ms/);
    expect(lines[2]).toMatch(/^short 1s\s+10\s+480\.0\s+950\.0\s+990\.0\s+995\.0\s+3\.00\s+900/);
    expect(lines[3]).toContain('long wait=25s');
  });

  it('prints requests per second and the bytes sent and received per second', () => {
    const lines = formatModeTable(results).split('\n');
    expect(lines[0]).toMatch(/bytes\/msg\s+req\/s\s+sent KiB\/s\s+recv KiB\/s/);
    expect(lines[2]).toMatch(/\s900\s+13\.3\s+4\.0\s+10\.0\s/);
    // A target that does not count bytes (a benchmark peer): a dash, not 0.
    expect(formatModeTable([result({ bytesSentPerSecond: null, bytesReceivedPerSecond: null })]).split('\n')[2]).toMatch(/\s13\.3\s+-\s+-\s/);
  });

  it('marks server CPU and RSS that cover only part of the server, and warns loudly', () => {
    const partial = result({ server: { pid: 7, pids: [7], cpuSeconds: 0, cpuSecondsPer1000Messages: 0, deliveryWindow: null, peakRssMiB: 50, error: 'cannot list the child processes of 7 (EACCES): CPU and RSS cover pid 7 only' } });
    const table = formatModeTable([partial]);
    expect(table.split('\n')[2]).toMatch(/\s0\.00\?\s+50\.0\?\s/);
    expect(table).toContain('? = server CPU/RSS incomplete (see warnings)');
    expect(warningsFor([partial]).join('\n')).toMatch(/SERVER CPU\/RSS INCOMPLETE: cannot list the child processes of 7/);
  });

  it('names the server it measured: store, bus and workers, or unknown', () => {
    const known: ServerInfo = { pid: 42, process: 'node', store: 'mysql', bus: 'redis', workers: 2, workerIdsSeen: ['1', '2'], source: 'x' };
    expect(serverLabel(known)).toBe('store mysql, bus redis, 2 workers');
    expect(serverLabel({ ...known, workers: 1 })).toBe('store mysql, bus redis, 1 worker');
    expect(formatServerCaption(known)).toMatch(/^server: store mysql, bus redis, 2 workers · CPU and RSS of pid 42 \(node\) and its descendants/);
    const unknown: ServerInfo = { pid: null, process: null, store: 'unknown', bus: 'unknown', workers: 'unknown', workerIdsSeen: [], source: 'remote target' };
    expect(serverLabel(unknown)).toBe('store unknown, bus unknown, workers unknown');
    expect(formatServerCaption(unknown)).toMatch(/^server: store unknown, bus unknown, workers unknown · CPU and RSS not measured/);
  });

  it('says which threshold failed, per mode', () => {
    expect(thresholdFailures(results, {})).toEqual([]);
    expect(thresholdFailures(results, { maxP99Ms: 1000, maxErrors: 0 })).toEqual([]);
    expect(thresholdFailures(results, { maxP99Ms: 500 })).toEqual(['--max-p99-ms 500: short 1s p99 990.0 ms']);
    expect(thresholdFailures([result({ errors: 3 }), result({ mode: 'long wait=5s', errors: 1 })], { maxErrors: 1 })).toEqual(['--max-errors 1: short 1s had 3 failed requests']);
    expect(thresholdFailures([result({ delivered: 0, latencyMs: { count: 0, p50: NaN, p95: NaN, p99: NaN, max: NaN, mean: NaN } })], { maxP99Ms: 500 })).toEqual([
      '--max-p99-ms 500: short 1s delivered nothing (no p99 to compare)',
    ]);
  });

  it('warns about lost and duplicated messages, truncation and a saturated load generator', () => {
    expect(warningsFor(results)).toEqual([]);
    const warnings = warningsFor([result({ lost: 2, duplicated: 1, truncated: 'drain timeout', loadGeneratorBound: true })]);
    expect(warnings.join('\n')).toMatch(/2 messages LOST/);
    expect(warnings.join('\n')).toMatch(/1 messages DUPLICATED/);
    expect(warnings.join('\n')).toMatch(/stopped early: drain timeout/);
    expect(warnings.join('\n')).toMatch(/load generator was the bottleneck/);
  });

  it('draws an SVG with a row per mode, a log latency axis and escaped labels', () => {
    const svg = renderChart([...results, result({ mode: 'a<b&c' })], { title: 'T', subtitle: 'S' });
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg).toContain('>short 1s<');
    expect(svg).toContain('>long wait=25s<');
    expect(svg).toContain('a&#60;b&#38;c');
    expect(svg).toContain('log scale');
    expect(svg.match(/<rect [^>]*fill="#2f855a"\/>/g)).toHaveLength(3 + 1);
  });

  it('calls the latency delivery latency (receipts are another feature) and draws it over time', () => {
    const svg = renderChart(results, { title: 'T', subtitle: 'S' });
    expect(svg).toContain('Delivery latency, publish → delivery');
    expect(svg).not.toMatch(/receipt/i);
    expect(svg).toContain('Delivery latency over time');
    // One line per mode and percentile; a second without deliveries breaks the line.
    expect(svg).toMatch(/<polyline [^>]*><title>short 1s p99<\/title><\/polyline>|<circle [^>]*><title>short 1s p99<\/title><\/circle>/);
    expect(svg).toMatch(/<title>long wait=25s p50<\/title>/);
    expect(svg).not.toMatch(/NaN|null/);
  });

  it('finds the inode of a listening socket in /proc/net/tcp text', () => {
    const header = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n';
    const tcp = `${header}   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0 100 0 0 10 0\n   1: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 4343 1\n`;
    expect([...listeningSocketInodes(8080, { tcp, tcp6: '' })]).toEqual(['4242']);
    expect(listeningSocketInodes(8081, { tcp, tcp6: '' }).size).toBe(0);
  });
});
