import { setMaxListeners } from 'node:events';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { DeliveryLedger, type LedgerTotals } from './ledger.js';
import type { ModeSpec } from './options.js';
import { ProcSampler } from './proc.js';
import { latencySeries, publishSchedule, ratio, summarizeLatencies, type LatencyPoint, type LatencySummary, type ScheduledPublish } from './stats.js';
import { BenchRequestError, type BenchTarget } from './target.js';

export interface ModeRunOptions {
  clients: number;
  rate: number;
  durationS: number;
  drainTimeoutS: number;
  maxRequests: number;
  seed: number;
  publishConnections: number;
  /** Messages per publish request (1 = one `publish` each; more = `publishBatch`). */
  publishBatch: number;
  /** Process to sample for CPU and RSS with all its descendants (the gateway and its workers, when local). */
  serverPid: number | undefined;
  /** Seconds over which the clients are opened one after another; publishing starts after it (default 0). */
  rampS?: number;
  /** Called about 4 times a second with the mode's live counters. */
  onProgress?: (progress: ModeProgress) => void;
  /**
   * Awaited just before the first publish and just after the drain (every message arrived or the
   * drain timed out), with the polls still held: a benchmark reads server-side counters there, so
   * they cover the deliveries and not the setup and teardown of thousands of polls.
   */
  deliveryWindow?: { start(): Promise<void>; end(): Promise<void> };
}

export interface ModeProgress {
  mode: string;
  phase: 'ramping' | 'publishing' | 'draining';
  elapsedS: number;
  durationS: number;
  published: number;
  scheduled: number;
  delivered: number;
  requests: number;
  errors: number;
}

export interface ModeResult extends LedgerTotals {
  mode: string;
  kind: ModeSpec['kind'];
  intervalMs: number | null;
  waitS: number | null;
  clients: number;
  rate: number;
  durationS: number;
  wallSeconds: number;
  /** From the first publish to the last publish answered: delivered / this = achieved throughput. */
  publishSeconds: number;
  /** From the first publish to the last new message received. */
  deliverySeconds: number;
  /** Stopped by --max-requests or the drain timeout before every message arrived. */
  truncated: string | null;
  latencyMs: LatencySummary;
  pollRequests: number;
  emptyResponses: number;
  supersededResponses: number;
  errors: number;
  errorsByLabel: Record<string, number>;
  publishErrors: number;
  /** Messages per publish request (the last request of a mode may carry fewer). */
  publishBatch: number;
  /** Publish requests sent, retries included. */
  publishRequests: number;
  responseBytes: number;
  requestsPerMessage: number | null;
  bytesPerMessage: number | null;
  /** Seconds over which the clients were opened before the first publish (--ramp). */
  rampS: number;
  /** Poll and publish requests per second of wall time (ramp, publishing and drain). */
  requestsPerSecond: number;
  /** Every request and response as HTTP/1.1 text; null when the target does not count bytes. */
  bytesSent: number | null;
  bytesReceived: number | null;
  bytesSentPerSecond: number | null;
  bytesReceivedPerSecond: number | null;
  /** Delivery latency per second since the first publish, by time of delivery. */
  latencySeries: LatencyPoint[];
  /** How late the publisher was against the schedule, before any wait for the server (below). */
  publishLagMaxMs: number;
  /** Publishes that waited because the server had 4 × --publish-connections unanswered: server-bound. */
  backpressureWaits: number;
  server: {
    pid: number;
    /** Every process measured: the server process and its descendants (the workers of `start --workers N`). */
    pids: number[];
    /** The whole mode: opening every poll, the deliveries, closing the polls. */
    cpuSeconds: number;
    cpuSecondsPer1000Messages: number | null;
    /** From the first publish to the end of the drain only: the cost of the deliveries themselves. */
    deliveryWindow: { cpuSeconds: number; cpuSecondsPer1000Messages: number | null } | null;
    /** Peak of the summed RSS of those processes. */
    peakRssMiB: number;
    /** Set when part of the server could not be read: the figures above cover less than all of it. */
    error?: string;
  } | null;
  loadGenerator: { cpuSeconds: number; cpuShareOfOneCore: number; eventLoopDelayP99Ms: number };
  /** The load generator, not the server, may have limited the figures. */
  loadGeneratorBound: boolean;
}

/** Above this share of one core the load generator's own event loop adds latency to what it measures. */
export const BOTTLENECK_CPU_SHARE = 0.8;

/**
 * Clears what earlier modes (or runs) left in the mailboxes, so a mode's accounting starts empty:
 * short polls with each client's cursor until an answer is empty. Not counted in any mode.
 */
export async function settleMailboxes(target: BenchTarget, cursors: number[], concurrency = 64): Promise<void> {
  let next = 0;
  const controller = new AbortController();
  setMaxListeners(0, controller.signal);
  async function worker() {
    while (next < cursors.length) {
      const client = next++;
      for (let round = 0; round < 50; round += 1) {
        const outcome = await target.poll(client, cursors[client]!, 0, controller.signal);
        cursors[client] = outcome.cursor;
        if (outcome.messages.length === 0) break;
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, cursors.length) }, worker));
}

/**
 * Waits (at most 15 s) until the server used under 10% of a core over 200 ms: every poll opened
 * so far has been taken in and is waiting.
 */
async function untilServerIdle(sampler: ProcSampler, signal: AbortSignal): Promise<void> {
  const deadline = performance.now() + 15_000;
  let previous = sampler.cpuSecondsNow();
  while (previous !== undefined && performance.now() < deadline && !signal.aborted) {
    await sleep(200);
    const now = sampler.cpuSecondsNow();
    if (now === undefined || now - previous < 0.02) return;
    previous = now;
  }
}

export async function runMode(target: BenchTarget, mode: ModeSpec, runTag: string, cursors: number[], options: ModeRunOptions): Promise<ModeResult> {
  const { clients } = options;
  const batched = options.publishBatch > 1;
  if (batched && !target.publishBatch) throw new Error('publishBatch > 1, but the target has no batch publish');
  if ((mode.kind === 'sse' || mode.kind === 'ws') && !target.stream) throw new Error(`${mode.label}: the target has no streams`);
  const ledger = new DeliveryLedger(clients);
  const schedule = publishSchedule({ rate: options.rate, durationS: options.durationS, clients, seed: options.seed });
  const stopController = new AbortController();
  const stopSignal = stopController.signal;
  // Every client's request and sleep listens for the stop: thousands of listeners are expected.
  setMaxListeners(0, stopSignal);
  let truncated: string | null = null;
  let requests = 0;
  let pollRequests = 0;
  let emptyResponses = 0;
  let supersededResponses = 0;
  let errors = 0;
  let publishErrors = 0;
  let publishRequests = 0;
  let responseBytes = 0;
  let publishLagMaxMs = 0;
  let backpressureWaits = 0;
  let phase: ModeProgress['phase'] = 'publishing';
  let lastReceiptAt = 0;
  const errorsByLabel = new Map<string, number>();
  const countError = (label: string) => {
    errors += 1;
    errorsByLabel.set(label, (errorsByLabel.get(label) ?? 0) + 1);
  };
  const takeRequest = (): boolean => {
    if (requests >= options.maxRequests) {
      truncated ??= `--max-requests ${options.maxRequests} reached`;
      stopController.abort();
      return false;
    }
    requests += 1;
    return true;
  };

  const sampler = options.serverPid === undefined ? undefined : new ProcSampler(options.serverPid);
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();
  const cpuStart = process.cpuUsage();
  const ackRequestsStart = target.ackRequests ?? 0;
  const trafficStart = target.traffic ? { bytesSent: target.traffic.bytesSent, bytesReceived: target.traffic.bytesReceived } : undefined;
  const started = performance.now();
  const rampMs = (options.rampS ?? 0) * 1000;
  if (rampMs > 0) phase = 'ramping';

  /** A stream mode's client: one connection at a time, another from the last cursor when it ends. */
  async function streamLoop(client: number, transport: 'sse' | 'ws'): Promise<void> {
    const openAt = started + (client * rampMs) / clients;
    if (openAt > performance.now()) await sleep(openAt - performance.now(), undefined, { signal: stopSignal }).catch(() => {});
    let failures = 0;
    while (!stopSignal.aborted) {
      if (!takeRequest()) break;
      pollRequests += 1;
      try {
        await target.stream!(
          client,
          cursors[client]!,
          transport,
          (batch) => {
            const at = performance.now();
            responseBytes += batch.bytes;
            for (const message of batch.messages) if (ledger.receive(client, message.serverId, message.seq, at) === 'new') lastReceiptAt = at;
            cursors[client] = batch.cursor;
            failures = 0;
          },
          stopSignal,
        );
      } catch (error) {
        if (stopSignal.aborted) break;
        countError(error instanceof BenchRequestError ? error.label : (error as Error).name);
        failures += 1;
        await sleep(Math.min(2_000, 100 * 2 ** Math.min(failures, 5)), undefined, { signal: stopSignal }).catch(() => {});
      }
    }
  }

  async function clientLoop(client: number): Promise<void> {
    if (mode.kind === 'sse' || mode.kind === 'ws') return streamLoop(client, mode.kind);
    const waitS = mode.kind === 'long' ? mode.waitS : 0;
    const intervalMs = mode.kind === 'short' ? mode.intervalMs : 0;
    // --ramp: client i opens at i / clients of the ramp.
    const openAt = started + (client * rampMs) / clients;
    if (mode.kind === 'long' && openAt > performance.now()) await sleep(openAt - performance.now(), undefined, { signal: stopSignal }).catch(() => {});
    // Short pollers start spread over one interval, as real clients that loaded at different times.
    let nextAt = Math.max(openAt, performance.now()) + (mode.kind === 'short' ? ((client * 7919) % 1000) / 1000 * intervalMs : 0);
    let failures = 0;
    while (!stopSignal.aborted) {
      if (mode.kind === 'short') {
        const delay = nextAt - performance.now();
        if (delay > 0) await sleep(delay, undefined, { signal: stopSignal }).catch(() => {});
        if (stopSignal.aborted) break;
        nextAt = Math.max(nextAt + intervalMs, performance.now());
      }
      if (!takeRequest()) break;
      try {
        const outcome = await target.poll(client, cursors[client]!, waitS, stopSignal);
        const at = performance.now();
        pollRequests += 1;
        responseBytes += outcome.bytes;
        if (outcome.messages.length === 0) emptyResponses += 1;
        if (outcome.superseded) supersededResponses += 1;
        for (const message of outcome.messages) if (ledger.receive(client, message.serverId, message.seq, at) === 'new') lastReceiptAt = at;
        cursors[client] = outcome.cursor;
        failures = 0;
      } catch (error) {
        if (stopSignal.aborted) break;
        pollRequests += 1;
        countError(error instanceof BenchRequestError ? error.label : (error as Error).name);
        failures += 1;
        // Back off like a polite client, so an overloaded server is measured, not hammered.
        await sleep(Math.min(2_000, 100 * 2 ** Math.min(failures, 5)), undefined, { signal: stopSignal }).catch(() => {});
      }
    }
  }

  const inFlight = new Set<Promise<void>>();
  // The cap counts requests, not messages: with --publish-batch n, n × this many may be in flight.
  const maxInFlight = options.publishConnections * 4;

  /** One publish request for `items` (one message unless batched), retried as a whole. */
  async function publishGroup(items: readonly ScheduledPublish[]): Promise<void> {
    const messages = items.map((item) => ({ client: item.client, key: `${runTag}-${item.seq}`, body: { run: runTag, seq: item.seq } }));
    for (let attempt = 1; ; attempt += 1) {
      if (!takeRequest()) {
        for (const item of items) ledger.publishFailedFor(item.seq);
        return;
      }
      publishRequests += 1;
      try {
        if (batched) await target.publishBatch!(messages);
        else await target.publish(messages[0]!.client, messages[0]!.key, messages[0]!.body);
        for (const item of items) ledger.acceptedAs(item.seq);
        return;
      } catch (error) {
        countError(`publish ${error instanceof BenchRequestError ? error.label : (error as Error).name}`);
        publishErrors += 1;
        const retryable = !(error instanceof BenchRequestError) || error.retryable;
        if (!retryable || attempt >= 4 || stopSignal.aborted) {
          for (const item of items) ledger.publishFailedFor(item.seq);
          return;
        }
        // The retry resends the same keys: the server answers the ones it already stored as duplicates.
        await sleep(100 * attempt);
      }
    }
  }

  async function publisher(): Promise<void> {
    const publishStarted = performance.now();
    for (let first = 0; first < schedule.length; first += options.publishBatch) {
      if (stopSignal.aborted) break;
      const group = schedule.slice(first, first + options.publishBatch);
      // A batching producer sends when it has collected the batch: when the last message is due.
      const due = publishStarted + group[group.length - 1]!.atMs;
      const delay = due - performance.now();
      if (delay > 1) await sleep(delay);
      // Lag is measured before waiting for the in-flight cap: a slow server making the publisher
      // wait is backpressure, not the load generator falling behind.
      publishLagMaxMs = Math.max(publishLagMaxMs, performance.now() - due);
      if (inFlight.size >= maxInFlight) backpressureWaits += 1;
      while (inFlight.size >= maxInFlight) await Promise.race(inFlight);
      const now = performance.now();
      for (const item of group) ledger.publishing(item.seq, item.client, now);
      const request = publishGroup(group).finally(() => inFlight.delete(request));
      inFlight.add(request);
    }
    await Promise.all(inFlight);
  }

  const progressTimer = options.onProgress
    ? setInterval(() => {
        const totals = ledger.totals();
        options.onProgress!({
          mode: mode.label,
          phase,
          elapsedS: (performance.now() - started) / 1000,
          durationS: options.durationS,
          published: totals.published,
          scheduled: schedule.length,
          delivered: totals.delivered,
          requests,
          errors,
        });
      }, 250)
    : undefined;

  const clientLoops = Array.from({ length: clients }, (_, client) => clientLoop(client));
  // --ramp: every client opens before the first publish, so latency is not the wait for a client to open.
  if (rampMs > 0) {
    await sleep(Math.max(0, started + rampMs - performance.now()));
    phase = 'publishing';
  }
  // Long pollers (and streams) should be held before the first publish, as they would be in steady state.
  if (mode.kind !== 'short') {
    await sleep(Math.min(2_000, 200 + clients / 10));
    // A server that verifies tokens and reads its store for each new poll is still admitting them
    // after that fixed pause; publishing into that queue would time the ramp-up, not delivery.
    if (sampler) await untilServerIdle(sampler, stopSignal);
  }
  await options.deliveryWindow?.start();
  const windowCpuStart = sampler?.cpuSecondsNow();
  const publishStarted = performance.now();
  lastReceiptAt = publishStarted;
  await publisher();
  const publishSeconds = (performance.now() - publishStarted) / 1000;
  phase = 'draining';
  const drainDeadline = performance.now() + options.drainTimeoutS * 1000;
  while (ledger.outstanding > 0 && !stopSignal.aborted && performance.now() < drainDeadline) await sleep(10);
  if (ledger.outstanding > 0 && !stopSignal.aborted) truncated ??= `drain timeout (${options.drainTimeoutS} s) with ${ledger.outstanding} messages undelivered`;
  const windowCpuEnd = sampler?.cpuSecondsNow();
  await options.deliveryWindow?.end();
  stopController.abort();
  await Promise.all(clientLoops);
  if (progressTimer) clearInterval(progressTimer);

  const wallSeconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuStart);
  loopDelay.disable();
  const generatorCpuSeconds = (cpu.user + cpu.system) / 1e6;
  const totals = ledger.totals();
  const serverStats = sampler?.stop();
  const cpuShare = generatorCpuSeconds / wallSeconds;
  const bytesSent = trafficStart && target.traffic ? target.traffic.bytesSent - trafficStart.bytesSent : null;
  const bytesReceived = trafficStart && target.traffic ? target.traffic.bytesReceived - trafficStart.bytesReceived : null;
  return {
    mode: mode.label,
    kind: mode.kind,
    intervalMs: mode.kind === 'short' ? mode.intervalMs : null,
    waitS: mode.kind === 'long' ? mode.waitS : null,
    clients,
    rate: options.rate,
    durationS: options.durationS,
    wallSeconds,
    publishSeconds,
    deliverySeconds: (lastReceiptAt - publishStarted) / 1000,
    truncated,
    ...totals,
    latencyMs: summarizeLatencies(ledger.latenciesMs),
    pollRequests,
    emptyResponses,
    supersededResponses,
    errors,
    errorsByLabel: Object.fromEntries(errorsByLabel),
    publishErrors,
    publishBatch: options.publishBatch,
    publishRequests,
    responseBytes,
    // A stream's requests: the connections it opened and the acks it sent as requests of their own.
    requestsPerMessage: ratio(pollRequests + (target.ackRequests ?? 0) - ackRequestsStart, totals.delivered),
    bytesPerMessage: ratio(responseBytes, totals.delivered),
    rampS: rampMs / 1000,
    requestsPerSecond: (pollRequests + publishRequests) / wallSeconds,
    bytesSent,
    bytesReceived,
    bytesSentPerSecond: bytesSent === null ? null : bytesSent / wallSeconds,
    bytesReceivedPerSecond: bytesReceived === null ? null : bytesReceived / wallSeconds,
    latencySeries: latencySeries(ledger.deliveredAtMs, ledger.latenciesMs, publishStarted),
    publishLagMaxMs,
    backpressureWaits,
    server:
      serverStats && options.serverPid !== undefined
        ? {
            pid: options.serverPid,
            pids: serverStats.pids,
            cpuSeconds: serverStats.cpuSeconds,
            cpuSecondsPer1000Messages: ratio(serverStats.cpuSeconds * 1000, totals.delivered),
            deliveryWindow:
              windowCpuStart !== undefined && windowCpuEnd !== undefined
                ? { cpuSeconds: windowCpuEnd - windowCpuStart, cpuSecondsPer1000Messages: ratio((windowCpuEnd - windowCpuStart) * 1000, totals.delivered) }
                : null,
            peakRssMiB: serverStats.peakRssKiB / 1024,
            ...(sampler!.error ? { error: sampler!.error } : {}),
          }
        : null,
    loadGenerator: { cpuSeconds: generatorCpuSeconds, cpuShareOfOneCore: cpuShare, eventLoopDelayP99Ms: loopDelay.percentile(99) / 1e6 },
    // Publish lag counts only when the server never pushed back: otherwise the server set the pace.
    loadGeneratorBound: cpuShare >= BOTTLENECK_CPU_SHARE || (publishLagMaxMs > 250 && backpressureWaits === 0),
  };
}
