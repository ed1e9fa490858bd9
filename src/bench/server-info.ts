import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { loadConfig } from '../config.js';
import { procReader } from './proc.js';

/**
 * What the load tester knows about the server it measured. The gateway's HTTP API does not say
 * which store and bus it runs on or how many workers it has (/healthz, /readyz and /metrics name
 * none of them; `X-Gateway-Worker` only names the worker that answered), so these come from the
 * local process: the gateway reads its configuration from its environment, and `start --workers N`
 * forks N copies of itself. Anything that cannot be read that way is 'unknown', never a guess.
 */
export interface ServerInfo {
  /** The process measured for CPU and RSS (with its descendants); null when none was. */
  pid: number | null;
  /** Its name (/proc/<pid>/comm), to show what was measured. */
  process: string | null;
  store: 'mysql' | 'sqlite' | 'unknown';
  bus: 'redis' | 'redis-cluster' | 'in-process' | 'unknown';
  /** Processes serving requests: 1 for a single process, N under `start --workers N`. */
  workers: number | 'unknown';
  /** Distinct `X-Gateway-Worker` values in the poll responses (only workers of `start --workers N` send it). */
  workerIdsSeen: string[];
  /** How the above were found, or why they are unknown. */
  source: string;
}

const readText = (path: string): string | undefined => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
};

const argvOf = (pid: number): string[] | undefined => readText(`/proc/${pid}/cmdline`)?.split('\0').filter((arg) => arg !== '');

/** `node …/longpoll-gateway(.js) start …`: the gateway's CLI (also under `npm start`). */
export function isGatewayStart(argv: readonly string[]): boolean {
  return argv.some((arg, index) => /^longpoll-gateway(\.js)?$/.test(basename(arg)) && argv[index + 1] === 'start');
}

/** Whether local process `pid` is `longpoll-gateway start` (false when its command line cannot be read). */
export function isGatewayProcess(pid: number): boolean {
  const argv = argvOf(pid);
  return argv !== undefined && isGatewayStart(argv);
}

function unknown(pid: number | undefined, source: string): ServerInfo {
  const name = pid === undefined ? undefined : readText(`/proc/${pid}/comm`)?.trim();
  return { pid: pid ?? null, process: name ?? null, store: 'unknown', bus: 'unknown', workers: 'unknown', workerIdsSeen: [], source };
}

/** Store, bus and worker count of the local server process `pid` (undefined: none measured). */
export function describeServer(pid: number | undefined, ownPid = process.pid): ServerInfo {
  if (pid === undefined) return unknown(undefined, 'no server process measured: store, bus and workers unknown');
  if (pid === ownPid) return unknown(pid, 'the server runs inside the load generator: store, bus and workers unknown');
  const argv = argvOf(pid);
  if (argv === undefined) return unknown(pid, `cannot read /proc/${pid}/cmdline: store, bus and workers unknown`);
  if (!isGatewayStart(argv)) return unknown(pid, `pid ${pid} is not \`longpoll-gateway start\`: store, bus and workers unknown`);
  const info = unknown(pid, '');
  const found: string[] = [];

  // The configuration the gateway read at start: its environment (names and kinds only are kept).
  const environ = readText(`/proc/${pid}/environ`);
  if (environ === undefined) {
    found.push(`store and bus unknown (cannot read /proc/${pid}/environ)`);
  } else {
    const env: Record<string, string> = {};
    for (const entry of environ.split('\0')) {
      const equals = entry.indexOf('=');
      if (equals > 0) env[entry.slice(0, equals)] = entry.slice(equals + 1);
    }
    try {
      const config = loadConfig(env);
      info.store = config.store.mysqlUrl ? 'mysql' : 'sqlite';
      info.bus = config.redis.clusterNodes ? 'redis-cluster' : config.redis.url ? 'redis' : 'in-process';
      found.push('store and bus from the configuration in its environment');
    } catch {
      // The message is not repeated: it may quote a value (a URL with its password).
      found.push("store and bus unknown (its environment does not load as this version's configuration)");
    }
  }

  // `start --workers N` forks N copies of itself: node:cluster re-runs the same script as a child
  // (under its absolute path when the primary was started with a relative one, as `npm start` does).
  try {
    const workers = procReader.children(pid).filter((child) => {
      const childArgv = argvOf(child);
      return childArgv !== undefined && isGatewayStart(childArgv);
    }).length;
    info.workers = workers === 0 ? 1 : workers;
    found.push(workers === 0 ? 'a single process (no worker processes)' : `${workers} worker processes`);
  } catch (error) {
    found.push(`workers unknown (cannot list its child processes: ${(error as Error).message})`);
  }
  info.source = `pid ${pid} runs \`longpoll-gateway start\`: ${found.join('; ')}`;
  return info;
}
