import cluster from 'node:cluster';
import type { RunningGateway } from '../start-from-env.js';
import type { WorkerListeningMessage } from './supervisor.js';

/**
 * One worker of `start --workers N`: runs an ordinary gateway (its server shares the primary's
 * port) and drains on SIGTERM or SIGINT. Repeated signals do not cut the drain short: Ctrl-C
 * reaches the whole process group and the primary forwards a SIGTERM as well; escalation is the
 * primary's job. If the primary dies, node:cluster ends the worker.
 *
 * @example
 * await runClusterWorker((workerId) => startGateway(process.env, { workerId }));
 */
export async function runClusterWorker(start: (workerId: number) => Promise<RunningGateway>): Promise<void> {
  const workerId = cluster.worker?.id;
  if (workerId === undefined || !process.send) throw new Error('runClusterWorker must run in a node:cluster worker');
  const gateway = await start(workerId);
  let draining = false;
  const drain = (signal: string) => {
    if (draining) return;
    draining = true;
    gateway.logger.info({ signal, worker: workerId }, 'worker draining');
    gateway.close().then(
      () => process.exit(0),
      (error: unknown) => {
        gateway.logger.error({ err: error }, 'worker shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => drain('SIGTERM'));
  process.on('SIGINT', () => drain('SIGINT'));
  const message: WorkerListeningMessage = { type: 'longpoll-gateway:listening', url: gateway.url };
  process.send(message);
}
