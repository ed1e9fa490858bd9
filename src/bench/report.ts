import type { ModeProgress, ModeResult } from './runner.js';
import type { ServerInfo } from './server-info.js';

const fixed = (value: number | null | undefined, digits: number): string =>
  value === null || value === undefined || Number.isNaN(value) ? '-' : value.toFixed(digits);

/** The per-mode table printed at the end of a run (also used by the benchmarks). */
export function formatTable(rows: string[][]): string {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  const line = (row: string[]) => row.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join('  ');
  return [line(rows[0]!), widths.map((width) => '-'.repeat(width)).join('  '), ...rows.slice(1).map(line)].join('\n');
}

export function formatModeTable(results: readonly ModeResult[]): string {
  const header = [
    ...['mode', 'delivered', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms', 'req/msg', 'bytes/msg', 'req/s', 'sent KiB/s', 'recv KiB/s'],
    ...['empty', 'errors', 'lost', 'dup', 'srv CPU s', 'srv RSS MiB', 'gen CPU'],
  ];
  const kib = (bytes: number | null) => (bytes === null ? null : bytes / 1024);
  // `?`: part of the server could not be read, so these figures cover less than all of it.
  const partial = (result: ModeResult) => (result.server?.error ? '?' : '');
  const rows = results.map((result) => [
    result.mode + (result.truncated ? ' *' : ''),
    String(result.delivered),
    fixed(result.latencyMs.p50, 1),
    fixed(result.latencyMs.p95, 1),
    fixed(result.latencyMs.p99, 1),
    fixed(result.latencyMs.max, 1),
    fixed(result.requestsPerMessage, 2),
    fixed(result.bytesPerMessage, 0),
    fixed(result.requestsPerSecond, 1),
    fixed(kib(result.bytesSentPerSecond), 1),
    fixed(kib(result.bytesReceivedPerSecond), 1),
    String(result.emptyResponses),
    String(result.errors),
    String(result.lost),
    String(result.duplicated + result.misrouted),
    fixed(result.server?.cpuSeconds, 2) + partial(result),
    fixed(result.server?.peakRssMiB, 1) + partial(result),
    `${Math.round(result.loadGenerator.cpuShareOfOneCore * 100)}%${result.loadGeneratorBound ? '!' : ''}`,
  ]);
  const table = formatTable([header, ...rows]);
  return results.some((result) => result.server?.error) ? `${table}\n? = server CPU/RSS incomplete (see warnings)` : table;
}

/** `store mysql, bus redis, 2 workers`: what the run was measured against (table, JSON and chart). */
export function serverLabel(info: Pick<ServerInfo, 'store' | 'bus' | 'workers'>): string {
  const workers = info.workers === 'unknown' ? 'workers unknown' : `${info.workers} worker${info.workers === 1 ? '' : 's'}`;
  return `store ${info.store}, bus ${info.bus}, ${workers}`;
}

/** The line above the table: which server, and which processes its CPU and RSS cover. */
export function formatServerCaption(info: ServerInfo): string {
  const measured = info.pid === null ? 'CPU and RSS not measured' : `CPU and RSS of pid ${info.pid}${info.process ? ` (${info.process})` : ''} and its descendants`;
  const seen = info.workerIdsSeen.length > 0 ? ` · X-Gateway-Worker seen: ${info.workerIdsSeen.join(', ')}` : '';
  return `server: ${serverLabel(info)} · ${measured}${seen}`;
}

/** One line per threshold a mode failed (`--max-p99-ms 500: long wait=25s p99 812.3 ms`); [] when all passed. */
export function thresholdFailures(results: readonly ModeResult[], thresholds: { maxP99Ms?: number | undefined; maxErrors?: number | undefined }): string[] {
  const failures: string[] = [];
  for (const result of results) {
    const { maxP99Ms, maxErrors } = thresholds;
    if (maxP99Ms !== undefined) {
      const p99 = result.latencyMs.p99;
      if (!Number.isFinite(p99)) failures.push(`--max-p99-ms ${maxP99Ms}: ${result.mode} delivered nothing (no p99 to compare)`);
      else if (p99 > maxP99Ms) failures.push(`--max-p99-ms ${maxP99Ms}: ${result.mode} p99 ${p99.toFixed(1)} ms`);
    }
    if (maxErrors !== undefined && result.errors > maxErrors) failures.push(`--max-errors ${maxErrors}: ${result.mode} had ${result.errors} failed requests`);
  }
  return failures;
}

/** Human warnings about a finished run: faults, truncation, a saturated load generator. */
export function warningsFor(results: readonly ModeResult[]): string[] {
  const warnings: string[] = [];
  for (const result of results) {
    if (result.lost > 0) warnings.push(`${result.mode}: ${result.lost} messages LOST (accepted by the server, never received)`);
    if (result.duplicated > 0) warnings.push(`${result.mode}: ${result.duplicated} messages DUPLICATED (received under a second server id)`);
    if (result.misrouted > 0) warnings.push(`${result.mode}: ${result.misrouted} messages delivered to the wrong mailbox`);
    if (result.truncated) warnings.push(`${result.mode}: stopped early: ${result.truncated}`);
    if (result.loadGeneratorBound) {
      warnings.push(
        `${result.mode}: the load generator was the bottleneck (its CPU ${Math.round(result.loadGenerator.cpuShareOfOneCore * 100)}% of a core, publish lag up to ${Math.round(result.publishLagMaxMs)} ms): figures include its own delays`,
      );
    }
    if (result.backpressureWaits > 0) {
      warnings.push(`${result.mode}: the server fell behind the publish rate (${result.backpressureWaits} publishes waited for earlier ones; publish lag up to ${Math.round(result.publishLagMaxMs)} ms)`);
    }
    if (result.server?.error) warnings.push(`${result.mode}: SERVER CPU/RSS INCOMPLETE: ${result.server.error}`);
  }
  return warnings;
}

/** A one-line progress bar, redrawn in place on a terminal and printed every few seconds otherwise. */
export function createProgressPrinter(stream: NodeJS.WriteStream | { write(text: string): boolean; isTTY?: boolean }): {
  update(progress: ModeProgress): void;
  done(): void;
} {
  let lastPlain = 0;
  let drawn = false;
  return {
    update(progress) {
      const share = progress.phase === 'publishing' ? Math.min(1, progress.published / Math.max(1, progress.scheduled)) : progress.phase === 'ramping' ? 0 : 1;
      const width = 24;
      const filled = Math.round(share * width);
      const bar = `${'#'.repeat(filled)}${'.'.repeat(width - filled)}`;
      const stage = progress.phase === 'publishing' ? `${Math.round(share * 100)}%` : progress.phase === 'ramping' ? 'ramp' : 'drain';
      const text = `${progress.mode.padEnd(16)} [${bar}] ${stage} published ${progress.published}/${progress.scheduled} delivered ${progress.delivered} requests ${progress.requests} errors ${progress.errors} ${progress.elapsedS.toFixed(0)}s`;
      if (stream.isTTY) {
        stream.write(`\r\x1b[2K${text}`);
        drawn = true;
      } else if (progress.elapsedS - lastPlain >= 5) {
        lastPlain = progress.elapsedS;
        stream.write(`${text}\n`);
      }
    },
    done() {
      if (drawn) stream.write('\r\x1b[2K');
      drawn = false;
      lastPlain = 0;
    },
  };
}
