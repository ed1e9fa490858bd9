import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';

/** Sent by a worker once its server listens (see ./worker.ts). */
export interface WorkerListeningMessage {
  type: 'longpoll-gateway:listening';
  url: string;
}

export function isListeningMessage(message: unknown): message is WorkerListeningMessage {
  return (
    typeof message === 'object' &&
    message !== null &&
    (message as { type?: unknown }).type === 'longpoll-gateway:listening' &&
    typeof (message as { url?: unknown }).url === 'string'
  );
}

export interface SupervisorOptions {
  workers: number;
  /** Added to every worker's environment (e.g. the JWT secret the primary resolved once). */
  env?: Record<string, string>;
  /** Workers drain within this; the primary kills the ones still running this much later plus 5 s. */
  shutdownGraceMs: number;
  logger: Logger;
  /** More crashes than `maxRestarts` within `restartWindowMs` and the primary gives up (exit 1). */
  maxRestarts?: number;
  restartWindowMs?: number;
  /** Pause before a crashed worker is replaced, so a crash loop cannot spin the CPU. */
  restartDelayMs?: number;
}

export interface Supervisor {
  /** Resolves with the URL once every initial worker listens; rejects if the workers keep crashing. */
  readonly listening: Promise<string>;
  /** Resolves with the exit code for the primary: 0 after a clean drain of every worker. */
  readonly exited: Promise<number>;
  /** First call: every worker drains (SIGTERM). Second call: every worker is killed. */
  shutdown(reason: string): void;
}

/**
 * The primary of `start --workers N`: forks N workers that share one listening port (node:cluster
 * hands connections out round-robin), replaces a worker that crashes at a bounded rate, and on
 * shutdown lets every worker drain its held polls before it exits itself.
 *
 * @example
 * const supervisor = superviseWorkers({ workers: 2, shutdownGraceMs: 10_000, logger });
 * console.log(await supervisor.listening);
 * process.on('SIGTERM', () => supervisor.shutdown('SIGTERM'));
 * process.exit(await supervisor.exited);
 */
export function superviseWorkers(options: SupervisorOptions): Supervisor {
  const { workers, logger } = options;
  const maxRestarts = options.maxRestarts ?? Math.max(5, workers * 2);
  const restartWindowMs = options.restartWindowMs ?? 60_000;
  const restartDelayMs = options.restartDelayMs ?? 500;
  if (!Number.isInteger(workers) || workers < 1) throw new TypeError('Expected `workers` to be a positive integer');

  const live = new Set<Worker>();
  const restarts: number[] = [];
  /** Exit codes of the workers that exited during shutdown: all 0 means every drain was clean. */
  const drainExitCodes: Array<number | null> = [];
  let listeningCount = 0;
  let url: string | undefined;
  let stopping = false;
  let killTimer: NodeJS.Timeout | undefined;
  const restartTimers = new Set<NodeJS.Timeout>();

  let resolveListening!: (url: string) => void;
  let rejectListening!: (error: Error) => void;
  const listening = new Promise<string>((resolve, reject) => {
    resolveListening = resolve;
    rejectListening = reject;
  });
  // The caller may only await `exited`; an unobserved rejection must not crash the primary.
  listening.catch(() => {});
  let resolveExited!: (code: number) => void;
  const exited = new Promise<number>((resolve) => (resolveExited = resolve));

  function fork(): void {
    const worker = cluster.fork(options.env ?? {});
    live.add(worker);
    let announced = false;
    worker.on('message', (message: unknown) => {
      if (!isListeningMessage(message) || announced) return;
      announced = true;
      url ??= message.url;
      listeningCount += 1;
      if (listeningCount === workers) resolveListening(url);
    });
    worker.once('exit', (code, signal) => {
      live.delete(worker);
      if (stopping) {
        drainExitCodes.push(code);
        if (live.size === 0) finish();
        return;
      }
      logger.error({ worker: worker.id, pid: worker.process.pid, code, signal }, 'worker exited unexpectedly');
      const now = Date.now();
      restarts.push(now);
      while (restarts.length > 0 && restarts[0]! < now - restartWindowMs) restarts.shift();
      if (restarts.length > maxRestarts) {
        logger.fatal({ restarts: restarts.length, windowMs: restartWindowMs }, 'workers keep crashing: giving up');
        rejectListening(new Error(`workers keep crashing (${restarts.length} exits in ${restartWindowMs} ms)`));
        shutdown('crash loop', 1);
        return;
      }
      const timer = setTimeout(() => {
        restartTimers.delete(timer);
        if (!stopping) fork();
      }, restartDelayMs);
      restartTimers.add(timer);
    });
  }

  let forcedExitCode = 0;
  function finish(): void {
    clearTimeout(killTimer);
    resolveExited(forcedExitCode === 0 && drainExitCodes.every((code) => code === 0) ? 0 : 1);
  }

  function shutdown(reason: string, exitCode = 0): void {
    if (stopping) {
      // A second signal: do not wait for drains any more.
      logger.warn({ reason }, 'killing workers');
      forcedExitCode = 1;
      for (const worker of live) worker.process.kill('SIGKILL');
      return;
    }
    stopping = true;
    forcedExitCode = exitCode;
    for (const timer of restartTimers) clearTimeout(timer);
    restartTimers.clear();
    rejectListening(new Error(`stopped before every worker listened (${reason})`));
    logger.info({ reason, workers: live.size }, 'draining workers');
    if (live.size === 0) return finish();
    for (const worker of live) worker.process.kill('SIGTERM');
    killTimer = setTimeout(() => {
      logger.error({ workers: live.size }, 'workers did not drain in time: killing them');
      forcedExitCode = 1;
      for (const worker of live) worker.process.kill('SIGKILL');
    }, options.shutdownGraceMs + 5_000);
  }

  for (let i = 0; i < workers; i += 1) fork();
  return { listening, exited, shutdown: (reason) => shutdown(reason) };
}
