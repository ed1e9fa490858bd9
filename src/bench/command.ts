import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname } from 'node:path';
import { createTokenIssuer } from '../auth/tokens.js';
import { loadConfig } from '../config.js';
import { developmentSecretFile } from '../start-from-env.js';
import { assertTargetAllowed, BenchUsageError, isLoopbackAddress, parseBenchArgs, type BenchOptions, type ModeSpec } from './options.js';
import { findListeningPid } from './proc.js';
import { createProgressPrinter, formatModeTable, formatServerCaption, serverLabel, thresholdFailures, warningsFor } from './report.js';
import { runMode, settleMailboxes, type ModeResult } from './runner.js';
import { describeServer, isGatewayProcess, type ServerInfo } from './server-info.js';
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
  /** The server measured: store, bus and workers ('unknown' where they could not be read). */
  server: ServerInfo;
  modes: ModeResult[];
  /** --max-p99-ms / --max-errors (null when not given) and one line per failure. */
  thresholds: { maxP99Ms: number | null; maxErrors: number | null; failed: string[] };
  warnings: string[];
}

const TOKENS_NEEDED = 'Tokens are needed: pass `--secret` (or set GATEWAY_JWT_SECRET) to mint them, or `--tokens <file>`';

/**
 * Without --secret, GATEWAY_JWT_SECRET or --tokens: the development secret that `start` and
 * `token` keep next to SQLITE_FILE, found from the same environment variables. Only read, never
 * made: a secret the gateway does not have would turn every request into a 401.
 */
export function developmentSecret(env: Record<string, string | undefined>): { secret: string; secretFile: string } {
  let config;
  try {
    config = loadConfig(env);
  } catch (error) {
    throw new BenchUsageError(`${TOKENS_NEEDED}; the development secret cannot be found: ${(error as Error).message}`);
  }
  if (env.NODE_ENV === 'production') {
    throw new BenchUsageError(`${TOKENS_NEEDED}; with NODE_ENV=production the gateway uses GATEWAY_JWT_SECRET, never a development secret`);
  }
  if (config.store.sqliteFile === ':memory:') {
    throw new BenchUsageError(`${TOKENS_NEEDED}; SQLITE_FILE=:memory: keeps no development secret (each gateway makes its own)`);
  }
  const secretFile = developmentSecretFile(config.store);
  if (!existsSync(secretFile)) {
    throw new BenchUsageError(
      `${TOKENS_NEEDED}; there is no development secret at ${secretFile} yet: start the gateway from this directory (with the same SQLITE_FILE) first, it makes one`,
    );
  }
  return { secret: readFileSync(secretFile, 'utf8').trim(), secretFile };
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
  if (options.secret === undefined) throw new BenchUsageError(TOKENS_NEEDED);
  const issuer = createTokenIssuer({ secret: options.secret });
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
  if (!(host === 'localhost' || isLoopbackAddress(host))) {
    warnings.push(`the target is not on this machine: server CPU and RSS not reported; store, bus and workers unknown`);
    return undefined;
  }
  const port = Number(options.url.port || (options.url.protocol === 'https:' ? 443 : 80));
  const pid = findListeningPid(port);
  if (pid === undefined) warnings.push(`no local process found listening on port ${port}: server CPU and RSS not reported (pass --server-pid)`);
  if (pid === process.pid) warnings.push('the server runs inside the load generator: its CPU and RSS include the load generator\'s');
  return pid;
}

/** What the process found by its port is, said loudly when it is not the gateway (a proxy, a container's port forwarder). */
function describeFoundServer(options: BenchOptions, serverPid: number | undefined, warnings: string[]): ServerInfo {
  const info = describeServer(serverPid);
  if (options.serverPid === 'auto' && serverPid !== undefined && serverPid !== process.pid && !isGatewayProcess(serverPid)) {
    warnings.push(`the process listening on the target port (pid ${serverPid}, ${info.process ?? '?'}) is not \`longpoll-gateway start\`: server CPU and RSS are that process tree's; store, bus and workers unknown`);
  }
  return info;
}

/** Store, bus and workers, checked against the `X-Gateway-Worker` answers seen during the run. */
function serverInfoAfterRun(before: ServerInfo, workerIdsSeen: ReadonlySet<string> | undefined, warnings: string[]): ServerInfo {
  const info = { ...before, workerIdsSeen: [...(workerIdsSeen ?? [])].sort((a, b) => Number(a) - Number(b) || a.localeCompare(b)) };
  // Only the workers of `start --workers N` send X-Gateway-Worker: a single process measured while
  // workers answered means the measured process is not the whole server.
  if (info.workers === 1 && info.workerIdsSeen.length > 0) {
    warnings.push(`pid ${info.pid} looks like a single process, but workers answered (X-Gateway-Worker ${info.workerIdsSeen.join(', ')}): server CPU and RSS may cover only part of the server`);
  }
  return info;
}

/** 1 when a message was lost, duplicated or misrouted; 3 when a threshold failed; else 0. */
export function benchExitCode(report: Pick<BenchReport, 'modes' | 'thresholds'>): number {
  if (report.modes.some((mode) => mode.lost + mode.duplicated + mode.misrouted > 0)) return 1;
  return report.thresholds.failed.length > 0 ? 3 : 0;
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
  const serverBefore = describeFoundServer(options, serverPid, warnings);
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
        rampS: options.rampS,
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
  const server = serverInfoAfterRun(serverBefore, target.workerIdsSeen, warnings);
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
      rampS: options.rampS,
      maxP99Ms: options.maxP99Ms ?? null,
      maxErrors: options.maxErrors ?? null,
    },
    server,
    modes: results,
    thresholds: {
      maxP99Ms: options.maxP99Ms ?? null,
      maxErrors: options.maxErrors ?? null,
      failed: thresholdFailures(results, { maxP99Ms: options.maxP99Ms, maxErrors: options.maxErrors }),
    },
    warnings: [...warnings, ...warningsFor(results)],
  };
}

/** `longpoll-gateway bench …`: the exit code of benchExitCode (2 on bad arguments, thrown as BenchUsageError). */
export async function runBenchCommand(argv: string[], env: Record<string, string | undefined>, io: BenchIo): Promise<number> {
  let options = parseBenchArgs(argv, env);
  if (options.secret === undefined && options.tokensFile === undefined) {
    // Refuse a remote target before touching any secret file.
    await assertTargetAllowed(options.url, options.allowRemote);
    const { secret, secretFile } = developmentSecret(env);
    io.stderr.write(`note: GATEWAY_JWT_SECRET is not set: minting tokens with the development secret in ${secretFile} (as \`token\` does)\n`);
    options = { ...options, secret };
  }
  const report = await runBench(options, io);
  io.stdout.write(`\n${formatServerCaption(report.server)}\n${formatModeTable(report.modes)}\n`);
  io.stdout.write(
    '\nlatency = publish request sent → poll response received; req/msg = poll requests per delivered message;\n' +
      'bytes/msg = poll response bytes (status, headers, body) per delivered message; req/s, sent/recv KiB/s = all requests\n' +
      'and their bytes per second of the mode; * = stopped early; ! = load generator bound\n' +
      (options.modes.some((mode) => mode.kind === 'sse' || mode.kind === 'ws')
        ? 'sse / websocket: one connection per client (req/msg counts the connections opened and, for sse, its POST /v1/ack;\n' +
          'acks are coalesced to one per 100 ms per client); bytes/msg = event or frame bytes per delivered message\n'
        : '') +
      (options.rampS > 0 ? `ramp: clients opened over ${options.rampS} s before the first publish\n` : '') +
      (options.publishBatch > 1 ? `publishes: ${options.publishBatch} messages per POST /v1/messages/batch; latency runs from that request\n` : ''),
  );
  if (options.maxP99Ms !== undefined || options.maxErrors !== undefined) {
    const given = [options.maxP99Ms !== undefined ? `--max-p99-ms ${options.maxP99Ms}` : '', options.maxErrors !== undefined ? `--max-errors ${options.maxErrors}` : ''].filter(Boolean).join(', ');
    if (report.thresholds.failed.length === 0) io.stdout.write(`\nthresholds passed (${given})\n`);
    else io.stdout.write(`\n${report.thresholds.failed.map((failure) => `threshold failed: ${failure}`).join('\n')}\n`);
  }
  for (const warning of report.warnings) io.stderr.write(`warning: ${warning}\n`);
  mkdirSync(dirname(options.outPrefix), { recursive: true });
  writeFileSync(`${options.outPrefix}.json`, `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(
    `${options.outPrefix}.svg`,
    renderChart(report.modes, {
      title: `Short vs long polling: ${options.clients} clients, ${options.rate} msg/s, ${options.durationS} s per mode · ${serverLabel(report.server)}`,
      subtitle: `${report.target} · ${report.date.slice(0, 16).replace('T', ' ')} UTC · ${report.machine.cpus} cores · Node ${report.machine.node}`,
    }),
  );
  io.stdout.write(`\nwrote ${options.outPrefix}.json and ${options.outPrefix}.svg\n`);
  return benchExitCode(report);
}
