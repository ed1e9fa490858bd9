import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname } from 'node:path';
import { createTokenIssuer } from '../auth/tokens.js';
import { assertTargetAllowed, BenchUsageError, isLoopbackAddress, parseBenchArgs, type BenchOptions, type ModeSpec } from './options.js';
import { findListeningPid } from './proc.js';
import { createProgressPrinter, formatModeTable, warningsFor } from './report.js';
import { runMode, settleMailboxes, type ModeResult } from './runner.js';
import { renderChart } from './svg.js';
import { createGatewayTarget, type BenchTarget, type GatewayTargetOptions } from './target.js';

export interface BenchIo {
  stdout: { write(text: string): boolean };
  stderr: { write(text: string): boolean; isTTY?: boolean };
}

export interface BenchReport {
  tool: 'longpoll-gateway bench';
  date: string;
  target: string;
  machine: { cpus: number; cpuModel: string; node: string; platform: string };
  options: Record<string, unknown>;
  modes: ModeResult[];
  warnings: string[];
}

interface Credentials {
  publisherToken: string;
  clientTokens: string[];
  clientUserIds: string[];
}

/** The `sub` of a JWT, read without verifying it (the gateway verifies; we only need the user id). */
export function subjectOf(token: string): string {
  const payload = token.split('.')[1];
  if (!payload) throw new BenchUsageError('A line of --tokens is not a JWT');
  let sub: unknown;
  try {
    sub = (JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { sub?: unknown }).sub;
  } catch {
    throw new BenchUsageError('A line of --tokens is not a JWT');
  }
  if (typeof sub !== 'string') throw new BenchUsageError('A token in --tokens has no `sub`');
  return sub;
}

async function loadCredentials(options: BenchOptions): Promise<Credentials> {
  if (options.tokensFile !== undefined) {
    let lines: string[];
    try {
      lines = readFileSync(options.tokensFile, 'utf8').split('\n').map((line) => line.trim()).filter(Boolean);
    } catch (error) {
      throw new BenchUsageError(`Cannot read --tokens ${options.tokensFile}: ${(error as Error).message}`);
    }
    if (lines.length < options.clients + 1) {
      throw new BenchUsageError(`--tokens has ${lines.length} tokens; ${options.clients} clients need ${options.clients + 1} (the publisher's first)`);
    }
    const clientTokens = lines.slice(1, options.clients + 1);
    const clientUserIds = clientTokens.map(subjectOf);
    if (new Set(clientUserIds).size !== clientUserIds.length) throw new BenchUsageError('--tokens: every client needs its own user (mailbox)');
    return { publisherToken: lines[0]!, clientTokens, clientUserIds };
  }
  const issuer = createTokenIssuer({ secret: options.secret! });
  const prefix = options.userPrefix ?? `bench-${randomBytes(3).toString('hex')}`;
  const clientUserIds = Array.from({ length: options.clients }, (_, index) => `${prefix}-${index}`);
  const expiresInSeconds = 24 * 3600;
  return {
    publisherToken: await issuer.issue(`${prefix}-publisher`, { expiresInSeconds }),
    clientTokens: await Promise.all(clientUserIds.map((userId) => issuer.issue(userId, { expiresInSeconds }))),
    clientUserIds,
  };
}

/** Soft limit of open files: every client holds a connection. */
function openFilesLimit(): number | undefined {
  try {
    const match = /Max open files\s+(\d+)/.exec(readFileSync('/proc/self/limits', 'utf8'));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

function resolveServerPid(options: BenchOptions, warnings: string[]): number | undefined {
  if (options.serverPid === 'none') return undefined;
  if (typeof options.serverPid === 'number') return options.serverPid;
  const host = options.url.hostname.replace(/^\[|\]$/g, '');
  if (!(host === 'localhost' || isLoopbackAddress(host))) return undefined;
  const port = Number(options.url.port || (options.url.protocol === 'https:' ? 443 : 80));
  const pid = findListeningPid(port);
  if (pid === undefined) warnings.push(`no local process found listening on port ${port}: server CPU and RSS not reported (pass --server-pid)`);
  if (pid === process.pid) warnings.push('the server runs inside the load generator: its CPU and RSS include the load generator\'s');
  return pid;
}

/**
 * Runs every mode of `options` against the target and returns the report (no files written).
 * Benchmarks call this directly; the CLI wraps it with output files.
 */
export async function runBench(
  options: BenchOptions,
  io: BenchIo,
  /** Another server protocol behind the same load generator (the benchmarks' peers); default: the gateway's API. */
  createTarget: (target: GatewayTargetOptions) => BenchTarget = createGatewayTarget,
  /** Benchmarks: awaited around each mode's deliveries (see ModeRunOptions.deliveryWindow). */
  hooks: { deliveryWindow?: (mode: ModeSpec) => { start(): Promise<void>; end(): Promise<void> } } = {},
): Promise<BenchReport> {
  await assertTargetAllowed(options.url, options.allowRemote);
  const limit = openFilesLimit();
  const needed = options.clients + options.publishConnections + 64;
  if (limit !== undefined && needed > limit) {
    throw new BenchUsageError(`${options.clients} clients need about ${needed} open files; the limit here is ${limit} (ulimit -n)`);
  }
  const warnings: string[] = [];
  const credentials = await loadCredentials(options);
  const serverPid = resolveServerPid(options, warnings);
  let runTag = '';
  const target = createTarget({ url: options.url, ...credentials, publishConnections: options.publishConnections, receipts: options.receipts, runTag: () => runTag });
  if (options.publishBatch > 1 && !target.publishBatch) {
    await target.close();
    throw new BenchUsageError(`--publish-batch ${options.publishBatch}: this target has no batch publish`);
  }
  const cursors = new Array<number>(options.clients).fill(0);
  const results: ModeResult[] = [];
  const progress = options.progress ? createProgressPrinter(io.stderr) : undefined;
  const runId = randomBytes(4).toString('hex');
  try {
    for (const [index, mode] of options.modes.entries()) {
      runTag = `${runId}-${index}`;
      try {
        await settleMailboxes(target, cursors);
      } catch (error) {
        throw new BenchUsageError(`Cannot poll ${options.url.href}: ${(error as Error).message}`);
      }
      if (mode.kind === 'long' && target.pollWaitMaxS !== undefined && mode.waitS > target.pollWaitMaxS) {
        throw new BenchUsageError(`--long ${mode.waitS}: the server accepts wait ≤ ${target.pollWaitMaxS} s (X-Poll-Wait-Max)`);
      }
      const result = await runMode(target, mode, runTag, cursors, {
        clients: options.clients,
        rate: options.rate,
        durationS: options.durationS,
        drainTimeoutS: options.drainTimeoutS,
        maxRequests: options.maxRequests,
        seed: options.seed,
        publishConnections: options.publishConnections,
        publishBatch: options.publishBatch,
        serverPid,
        ...(progress ? { onProgress: progress.update } : {}),
        ...(hooks.deliveryWindow ? { deliveryWindow: hooks.deliveryWindow(mode) } : {}),
      });
      progress?.done();
      results.push(result);
    }
  } finally {
    progress?.done();
    await target.close();
  }
  return {
    tool: 'longpoll-gateway bench',
    date: new Date().toISOString(),
    target: options.url.href,
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', node: process.version, platform: `${process.platform} ${process.arch}` },
    options: {
      clients: options.clients,
      rate: options.rate,
      durationS: options.durationS,
      drainTimeoutS: options.drainTimeoutS,
      maxRequests: options.maxRequests,
      seed: options.seed,
      publishBatch: options.publishBatch,
      modes: options.modes.map((mode) => mode.label),
      serverPid: serverPid ?? null,
    },
    modes: results,
    warnings: [...warnings, ...warningsFor(results)],
  };
}

/** `longpoll-gateway bench …`: exit code 0 when nothing was lost, duplicated or misrouted. */
export async function runBenchCommand(argv: string[], env: Record<string, string | undefined>, io: BenchIo): Promise<number> {
  const options = parseBenchArgs(argv, env);
  const report = await runBench(options, io);
  io.stdout.write(`\n${formatModeTable(report.modes)}\n`);
  io.stdout.write(
    '\nlatency = publish request sent → poll response received; req/msg = poll requests per delivered message;\n' +
      'bytes/msg = poll response bytes (status, headers, body) per delivered message; * = stopped early; ! = load generator bound\n' +
      (options.publishBatch > 1 ? `publishes: ${options.publishBatch} messages per POST /v1/messages/batch; latency runs from that request\n` : ''),
  );
  for (const warning of report.warnings) io.stderr.write(`warning: ${warning}\n`);
  mkdirSync(dirname(options.outPrefix), { recursive: true });
  writeFileSync(`${options.outPrefix}.json`, `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(
    `${options.outPrefix}.svg`,
    renderChart(report.modes, {
      title: `Short vs long polling: ${options.clients} clients, ${options.rate} msg/s, ${options.durationS} s per mode`,
      subtitle: `${report.target} · ${report.date.slice(0, 16).replace('T', ' ')} UTC · ${report.machine.cpus} cores · Node ${report.machine.node}`,
    }),
  );
  io.stdout.write(`\nwrote ${options.outPrefix}.json and ${options.outPrefix}.svg\n`);
  const faulty = report.modes.some((mode) => mode.lost + mode.duplicated + mode.misrouted > 0);
  return faulty ? 1 : 0;
}
