import cluster from 'node:cluster';
import { parseArgs } from 'node:util';
import { loadConfig } from '../config.js';
import { createLogger, resolveJwtSecret, startGateway } from '../start-from-env.js';
import { createKnex } from '../store/knex/index.js';
import { migrateToLatest } from '../store/migrations.js';
import { parseWorkersFlag, planWorkers, WorkersConfigError } from './plan.js';
import { superviseWorkers } from './supervisor.js';
import { runClusterWorker } from './worker.js';

/**
 * The multi-process part of `longpoll-gateway start [--workers N|auto]`. Returns false when the
 * plan is a single process, which the caller then runs as before; otherwise runs this process as
 * the cluster primary or as one of its workers and returns true.
 */
export async function startClustered(args: string[], env: Record<string, string | undefined> = process.env): Promise<boolean> {
  if (cluster.isWorker) {
    await runClusterWorker((workerId) => startGateway(env, { workerId }));
    return true;
  }
  let values: { workers?: string | undefined };
  try {
    ({ values } = parseArgs({ args, options: { workers: { type: 'string' } }, allowPositionals: false }));
  } catch (error) {
    throw new WorkersConfigError((error as Error).message);
  }
  const config = loadConfig(env);
  const workers = planWorkers(config, values.workers === undefined ? undefined : parseWorkersFlag(values.workers));
  if (workers === 1) return false;

  const logger = createLogger(config.runtime);
  // Resolved once here: workers each generating a development secret would race on its file and
  // could end up signing with different secrets.
  const secret = resolveJwtSecret(config, env, logger);
  // Migrate once before forking, so workers start on an up-to-date schema instead of queueing
  // on the migration lock together.
  const knex = createKnex(config.store);
  try {
    await migrateToLatest(knex);
  } finally {
    await knex.destroy();
  }

  const supervisor = superviseWorkers({ workers, env: { GATEWAY_JWT_SECRET: secret }, shutdownGraceMs: config.http.shutdownGraceMs, logger });
  process.on('SIGTERM', () => supervisor.shutdown('SIGTERM'));
  process.on('SIGINT', () => supervisor.shutdown('SIGINT'));
  void supervisor.exited.then((code) => {
    logger.info({ code }, 'all workers exited');
    process.exit(code);
  });
  let url: string;
  try {
    url = await supervisor.listening;
  } catch (error) {
    logger.fatal({ err: error }, 'workers did not start');
    return true; // `exited` ends the process
  }
  logger.info(
    { url, workers, store: 'mysql', bus: config.redis.clusterNodes ? 'redis-cluster' : 'redis' },
    `longpoll-gateway listening on ${url} (${workers} workers)`,
  );
  process.stdout.write(
    `\nlongpoll-gateway listening on ${url} (${workers} workers, pid ${process.pid})\n  token:  npm run token -- alice\n  poll:   curl "${url}/v1/poll?wait=25" -H "Authorization: Bearer $TOKEN"\n\n`,
  );
  return true;
}
