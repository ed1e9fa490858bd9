import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { parseArgs } from 'node:util';

/** One way of polling, run against the same publish schedule as every other mode of the run. */
export type ModeSpec =
  | { kind: 'short'; intervalMs: number; label: string }
  | { kind: 'long'; waitS: number; label: string }
  /** One connection per client that stays open: Server-Sent Events or a WebSocket. */
  | { kind: 'sse' | 'ws'; label: string };

export interface BenchOptions {
  url: URL;
  clients: number;
  /** Messages per second, all recipients together. */
  rate: number;
  /** Seconds of publishing per mode. */
  durationS: number;
  modes: ModeSpec[];
  /** Seconds a mode keeps polling after its last publish, waiting for stragglers. */
  drainTimeoutS: number;
  /** Poll + publish requests a mode may make before it stops early (reported as truncated). */
  maxRequests: number;
  /** Undefined with no `--tokens` either: the run falls back to the development secret (see developmentSecret). */
  secret: string | undefined;
  tokensFile: string | undefined;
  userPrefix: string | undefined;
  /** 'auto' = find the process listening on the target port (loopback only); 'none' = skip. */
  serverPid: number | 'auto' | 'none';
  outPrefix: string;
  allowRemote: boolean;
  seed: number;
  publishConnections: number;
  /** Messages per publish request: 1 = `POST /v1/messages`; more = `POST /v1/messages/batch`. */
  publishBatch: number;
  /** Every publish asks for a delivery receipt (`receipt: true`). */
  receipts: boolean;
  progress: boolean;
  /** Seconds over which the clients are opened, one after another, before publishing starts (0 = all at once). */
  rampS: number;
  /** Fail the run (exit code 3) when a mode's p99 latency is above this many ms. */
  maxP99Ms: number | undefined;
  /** Fail the run (exit code 3) when a mode has more failed requests than this. */
  maxErrors: number | undefined;
}

export class BenchUsageError extends Error {
  override name = 'BenchUsageError';
}

export const BENCH_LIMITS = {
  maxClients: 50_000,
  maxRate: 20_000,
  maxDurationS: 3_600,
  maxMessagesPerMode: 1_000_000,
  maxModes: 12,
  maxRequests: 50_000_000,
  maxPublishBatch: 1_000,
  maxRampS: 3_600,
} as const;

export const BENCH_USAGE = `longpoll-gateway bench [options]

Simulates --clients pollers (each its own mailbox, cursor and de-duplication by id) and one
publisher at --rate messages/s against a gateway, once per mode, with the same publish schedule.

  --url <url>              gateway base URL (default http://127.0.0.1:8080); loopback only
  --allow-remote           permit a non-loopback target (you are load-testing someone's server)
  --clients <n>            simulated clients (default 100, max ${BENCH_LIMITS.maxClients})
  --rate <msg/s>           publish rate, all clients together (default 50, max ${BENCH_LIMITS.maxRate})
  --duration <s>           seconds of publishing per mode (default 10)
  --short <ms,...>         short-polling intervals (default 500,1000,2000,5000; "none" to skip)
  --long <s,...>           long-polling wait values (default 5,25; "none" to skip)
  --sse                    also run a mode on Server-Sent Events (GET /v1/stream, acks coalesced per 100 ms)
  --ws                     also run a mode on WebSockets (GET /v1/ws, ack frames coalesced per 100 ms)
  --drain-timeout <s>      how long a mode waits for undelivered messages after publishing
                           (default: largest interval + 10 s)
  --max-requests <n>       requests per mode before it stops early (default 2000000)
  --secret <secret>        mint tokens with the gateway's HS256 secret (default: $GATEWAY_JWT_SECRET,
                           else the development secret next to SQLITE_FILE, as \`token\` uses)
  --tokens <file>          or read tokens, one per line: the publisher first, then one per client
  --user-prefix <prefix>   user ids minted with --secret (default bench-<random>)
  --server-pid <pid|auto|none>
                           gateway process for CPU and peak RSS, summed with all its descendants
                           (the workers of start --workers N); default auto: the process
                           listening on the target port, loopback only
  --out <prefix>           writes <prefix>.json and <prefix>.svg (default bench-results/bench-<time>)
  --seed <n>               seed of the publish schedule (default 1)
  --publish-connections <n> publisher's connection pool size (default 32)
  --publish-batch <n>      messages per publish request (default 1, max ${BENCH_LIMITS.maxPublishBatch}); above 1,
                           n consecutive scheduled messages go out in one POST /v1/messages/batch,
                           sent when the last of them is due
  --receipts               every publish asks for a delivery receipt (what receipts cost)
  --ramp <s>               open the clients one after another over this many seconds (default 0:
                           all at once); publishing starts once every client polls
  --max-p99-ms <ms>        fail (exit code 3) when a mode's p99 delivery latency is above this
  --max-errors <n>         fail (exit code 3) when a mode has more than n failed requests (0 allowed)
  --no-progress            no progress bar on stderr

Exit code: 0 passed; 1 a message was lost, duplicated or misrouted; 2 bad arguments or setup;
3 a --max-p99-ms or --max-errors threshold failed (each failure is printed as "threshold failed").
`;

const positiveInteger = (name: string, raw: string, max: number): number => {
  const value = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(value) || value < 1) throw new BenchUsageError(`Expected \`${name}\` to be a positive integer, got ${JSON.stringify(raw)}`);
  if (value > max) throw new BenchUsageError(`Expected \`${name}\` to be at most ${max}, got ${value}`);
  return value;
};

const positiveNumber = (name: string, raw: string, max: number): number => {
  const value = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(value) || value <= 0) throw new BenchUsageError(`Expected \`${name}\` to be a positive number, got ${JSON.stringify(raw)}`);
  if (value > max) throw new BenchUsageError(`Expected \`${name}\` to be at most ${max}, got ${value}`);
  return value;
};

/** A number from 0 (a duration that may be zero). */
const nonNegativeNumber = (name: string, raw: string, max: number, unit: string): number => {
  const value = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(value) || value < 0 || value > max) {
    throw new BenchUsageError(`Expected \`${name}\` to be a number of ${unit} from 0 to ${max}, got ${JSON.stringify(raw)}`);
  }
  return value;
};

/** A count from 0. */
const nonNegativeInteger = (name: string, raw: string, max: number): number => {
  const value = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(value) || value > max) {
    throw new BenchUsageError(`Expected \`${name}\` to be a whole number from 0, got ${JSON.stringify(raw)}`);
  }
  return value;
};

function parseList(name: string, raw: string, max: number): number[] {
  if (raw.trim() === 'none' || raw.trim() === '') return [];
  const values = raw.split(',').map((part) => positiveInteger(name, part, max));
  if (new Set(values).size !== values.length) throw new BenchUsageError(`\`${name}\` lists a value twice: ${raw}`);
  return values;
}

/** Validates the command line; throws BenchUsageError with a precise message. Pure (no I/O). */
export function parseBenchArgs(argv: string[], env: Record<string, string | undefined> = {}, now = new Date()): BenchOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        url: { type: 'string', default: 'http://127.0.0.1:8080' },
        'allow-remote': { type: 'boolean', default: false },
        clients: { type: 'string', default: '100' },
        rate: { type: 'string', default: '50' },
        duration: { type: 'string', default: '10' },
        short: { type: 'string', default: '500,1000,2000,5000' },
        long: { type: 'string', default: '5,25' },
        sse: { type: 'boolean', default: false },
        ws: { type: 'boolean', default: false },
        'drain-timeout': { type: 'string' },
        'max-requests': { type: 'string', default: '2000000' },
        secret: { type: 'string' },
        tokens: { type: 'string' },
        'user-prefix': { type: 'string' },
        'server-pid': { type: 'string', default: 'auto' },
        out: { type: 'string' },
        seed: { type: 'string', default: '1' },
        'publish-connections': { type: 'string', default: '32' },
        'publish-batch': { type: 'string', default: '1' },
        receipts: { type: 'boolean', default: false },
        'no-progress': { type: 'boolean', default: false },
        ramp: { type: 'string', default: '0' },
        'max-p99-ms': { type: 'string' },
        'max-errors': { type: 'string' },
      },
    }));
  } catch (error) {
    throw new BenchUsageError((error as Error).message);
  }

  let url: URL;
  try {
    url = new URL(values.url);
  } catch {
    throw new BenchUsageError(`Expected \`--url\` to be an http(s) URL, got ${JSON.stringify(values.url)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new BenchUsageError(`Expected \`--url\` to be http or https, got ${url.protocol}`);
  if (url.search || url.hash) throw new BenchUsageError('`--url` is the gateway base URL: no query or fragment');

  const clients = positiveInteger('--clients', values.clients, BENCH_LIMITS.maxClients);
  const rate = positiveNumber('--rate', values.rate, BENCH_LIMITS.maxRate);
  const durationS = positiveNumber('--duration', values.duration, BENCH_LIMITS.maxDurationS);
  if (rate * durationS > BENCH_LIMITS.maxMessagesPerMode) {
    throw new BenchUsageError(`--rate × --duration is ${Math.floor(rate * durationS)} messages per mode; the limit is ${BENCH_LIMITS.maxMessagesPerMode}`);
  }
  const modes: ModeSpec[] = [
    ...parseList('--short', values.short, 3_600_000).map((intervalMs): ModeSpec => ({ kind: 'short', intervalMs, label: `short ${formatMs(intervalMs)}` })),
    ...parseList('--long', values.long, 3_600).map((waitS): ModeSpec => ({ kind: 'long', waitS, label: `long wait=${waitS}s` })),
    ...(values.sse ? [{ kind: 'sse', label: 'sse' } as const] : []),
    ...(values.ws ? [{ kind: 'ws', label: 'websocket' } as const] : []),
  ];
  if (modes.length === 0) throw new BenchUsageError('Nothing to run: `--short` and `--long` are empty and neither `--sse` nor `--ws` is given');
  if (modes.length > BENCH_LIMITS.maxModes) throw new BenchUsageError(`At most ${BENCH_LIMITS.maxModes} modes per run, got ${modes.length}`);

  const largestIntervalS = Math.max(0, ...modes.map((mode) => (mode.kind === 'short' ? mode.intervalMs / 1000 : 0)));
  const drainTimeoutS = values['drain-timeout'] === undefined ? Math.ceil(largestIntervalS) + 10 : positiveNumber('--drain-timeout', values['drain-timeout'], 3_600);

  if (values.secret !== undefined && values.tokens !== undefined) throw new BenchUsageError('Give either `--secret` or `--tokens`, not both');
  if (values.secret !== undefined && values.secret.trim() === '') {
    throw new BenchUsageError(
      '`--secret` is empty (an unset variable?): pass the gateway\'s secret, or leave `--secret` out to use GATEWAY_JWT_SECRET or the development secret next to SQLITE_FILE',
    );
  }
  // An empty GATEWAY_JWT_SECRET is left to the development-secret step, which refuses it as the gateway does.
  const secret = values.secret ?? (env.GATEWAY_JWT_SECRET?.trim() ? env.GATEWAY_JWT_SECRET : undefined);
  if (values.tokens === undefined && secret !== undefined && secret.length < 32) throw new BenchUsageError('`--secret` must be at least 32 characters (as the gateway requires)');
  if (values['user-prefix'] !== undefined && !/^[A-Za-z0-9._:@-]{1,64}$/.test(values['user-prefix'])) {
    throw new BenchUsageError('`--user-prefix` must match ^[A-Za-z0-9._:@-]{1,64}$');
  }

  let serverPid: BenchOptions['serverPid'];
  if (values['server-pid'] === 'auto' || values['server-pid'] === 'none') serverPid = values['server-pid'];
  else serverPid = positiveInteger('--server-pid', values['server-pid'], 2 ** 22);

  const stamp = now.toISOString().replace(/[:.]/g, '-');
  return {
    url,
    clients,
    rate,
    durationS,
    modes,
    drainTimeoutS,
    maxRequests: positiveInteger('--max-requests', values['max-requests'], BENCH_LIMITS.maxRequests),
    secret: values.tokens === undefined ? secret : undefined,
    tokensFile: values.tokens,
    userPrefix: values['user-prefix'],
    serverPid,
    outPrefix: values.out ?? `bench-results/bench-${stamp}`,
    allowRemote: values['allow-remote'],
    seed: positiveInteger('--seed', values.seed, 2 ** 31),
    publishConnections: positiveInteger('--publish-connections', values['publish-connections'], 1_024),
    publishBatch: positiveInteger('--publish-batch', values['publish-batch'], BENCH_LIMITS.maxPublishBatch),
    receipts: values.receipts === true,
    progress: !values['no-progress'],
    rampS: nonNegativeNumber('--ramp', values.ramp, BENCH_LIMITS.maxRampS, 'seconds'),
    maxP99Ms: values['max-p99-ms'] === undefined ? undefined : positiveNumber('--max-p99-ms', values['max-p99-ms'], 3_600_000),
    maxErrors: values['max-errors'] === undefined ? undefined : nonNegativeInteger('--max-errors', values['max-errors'], BENCH_LIMITS.maxRequests),
  };
}

export function formatMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/** 127.0.0.0/8, ::1 and IPv4-mapped loopback. */
export function isLoopbackAddress(address: string): boolean {
  const bare = address.replace(/^\[|\]$/g, '');
  if (isIP(bare) === 4) return bare.split('.')[0] === '127';
  if (isIP(bare) === 6) {
    const lower = bare.toLowerCase();
    if (lower === '::1' || lower === '0:0:0:0:0:0:0:1') return true;
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
    return mapped ? isLoopbackAddress(mapped[1]!) : false;
  }
  return false;
}

/**
 * A load test is an attack on whoever runs the target: refuse anything that is not this machine
 * unless the user says so. A host name counts as loopback only if every address it resolves to is.
 */
export async function assertTargetAllowed(url: URL, allowRemote: boolean, resolve = (host: string) => lookup(host, { all: true })): Promise<void> {
  if (allowRemote) return;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const addresses = isIP(host) ? [host] : (await resolve(host)).map((entry) => entry.address);
  const remote = addresses.filter((address) => !isLoopbackAddress(address));
  if (addresses.length === 0 || remote.length > 0) {
    throw new BenchUsageError(`Refusing to load-test ${url.host} (${remote.join(', ') || 'unresolved'}): not a loopback address. Pass --allow-remote if you mean it.`);
  }
}
