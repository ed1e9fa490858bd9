/**
 * Presence: what it costs, measured against the issue's targets in one run. N held long polls and
 * a publisher at R msg/s through the load tester, each simulated client polling with its own
 * stable `client=<id>` and `presence=1`, against the gateway on MariaDB + Redis (one process) with
 * presence on (PRESENCE_GRACE_S=15) and off (PRESENCE_GRACE_S=0), in alternating pairs (on, off,
 * then off, on, …) so that drift over the run cancels. Then, on the last presence-on gateway, with
 * 100 users holding polls that read one topic: the two presence queries, each timed and counted in
 * Redis commands. Targets:
 *
 * 1. server CPU per delivery, presence on ÷ off (median of the pairs) ≤ 1.15;
 * 2. Redis commands for presence (script calls + publishes to the presence channel) ≤ 0.1 per
 *    poll, amortised over the whole run: every client's join and leave, the heartbeats, all polls;
 * 3. GET /v1/presence for 100 online users is one Redis round trip;
 * 4. GET /v1/topics/{name}/presence for a topic with 100 members is one Redis round trip.
 *
 *   npm run build && eval "$(bash scripts/services.sh env)"
 *   npx tsx benchmarks/presence.ts [--clients 5000] [--rate 500] [--duration 20] [--pairs 2]
 *     [--grace 15] [--queries 50] [--pin] [--smoke] [--cpu-prof <folder>]
 */
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { mkdirSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { createTokenIssuer } from '../src/auth/tokens.js';
import { runBench } from '../src/bench/command.js';
import { parseBenchArgs } from '../src/bench/options.js';
import type { ModeResult } from '../src/bench/runner.js';
import { summarizeLatencies, type LatencySummary } from '../src/bench/stats.js';
import { createGatewayTarget, type BenchTarget, type GatewayTargetOptions } from '../src/bench/target.js';
import { presenceChannel } from '../src/bus/channels.js';
import {
  cpuPinning,
  fmt,
  formatBackendCostTable,
  formatTable,
  meterDeliveries,
  openBackendCounters,
  parseCommandStats,
  realServers,
  report,
  sleep,
  startPeer,
  type BackendCost,
  type BackendSnapshot,
} from './lib.js';

const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '5000' },
    rate: { type: 'string', default: '500' },
    duration: { type: 'string', default: '20' },
    pairs: { type: 'string', default: '2' },
    /** PRESENCE_GRACE_S of the presence-on gateway. */
    grace: { type: 'string', default: '15' },
    /** Timed requests of each presence query. */
    queries: { type: 'string', default: '50' },
    pin: { type: 'boolean', default: false },
    smoke: { type: 'boolean', default: false },
    /** Writes a V8 CPU profile of each gateway run into this folder and prints its presence frames. */
    'cpu-prof': { type: 'string' },
  },
});
const clients = values.smoke ? 40 : Number(values.clients);
const rate = values.smoke ? 20 : Number(values.rate);
const durationS = values.smoke ? 1 : Number(values.duration);
const pairs = values.smoke ? 1 : Number(values.pairs);
// The smoke run waits out the grace after each load (the leaves are part of the amortised cost): keep it short there.
const graceS = values.smoke ? 2 : Number(values.grace);
const queries = values.smoke ? 5 : Number(values.queries);
for (const [name, value] of Object.entries({ clients, rate, duration: durationS, pairs, grace: graceS, queries })) {
  if (!(Number.isFinite(value) && value > 0)) throw new Error(`Expected \`--${name}\` to be a positive number, got ${value}`);
}
if (!Number.isInteger(pairs) || !Number.isInteger(clients) || !Number.isInteger(graceS)) throw new Error('Expected `--pairs`, `--clients` and `--grace` to be whole numbers');

/** The issue's targets. */
const TARGET_CPU_ON_VS_OFF = 1.15;
const TARGET_PRESENCE_REDIS_PER_POLL = 0.1;
const TARGET_ROUND_TRIPS = 1;
/** Users (and topic members) of the two queries: the most one presence query may name. */
const QUERY_USERS = 100;
const TOPIC = 'presence-bench-room';
/** What the presence registry's Lua scripts run inside Redis (commandstats counts them too). */
const SCRIPT_INNER_COMMANDS = new Set(['time', 'hkeys', 'hget', 'hlen', 'hgetall', 'hsetnx', 'sadd', 'hincrby', 'zscore', 'zadd', 'hset', 'zrangebyscore', 'srem', 'hdel', 'smembers', 'del', 'zrem']);
const SCRIPT_CALLS = ['evalsha', 'eval'];

const loadBefore = loadavg();
if (!realServers()) process.stderr.write('MYSQL_URL / REDIS_URL not set: the gateway runs on the embedded defaults (in-process presence, no Redis to count)\n');
const secret = randomBytes(32).toString('hex');
const issuer = createTokenIssuer({ secret });
const quiet = { stdout: process.stdout, stderr: process.stderr };
const pinning = cpuPinning(values.pin);
const counters = await openBackendCounters();
/** Our own connection for INFO commandstats around single requests (no MariaDB round trip in the window). */
const statsRedis = realServers() ? new Redis(realServers()!.redisUrl, { lazyConnect: true, enableReadyCheck: false, maxRetriesPerRequest: 1 }) : undefined;
await statsRedis?.connect();
if (values['cpu-prof']) mkdirSync(values['cpu-prof'], { recursive: true });

type Presence = 'on' | 'off';

/** Redis calls in a window, split by who ran them. */
interface RedisSplit {
  total: number;
  /** EVALSHA + EVAL: the presence registry's round trips (nothing else of the gateway runs scripts). */
  scriptCalls: number;
  /** Commands the scripts ran inside Redis (counted by commandstats, but no round trip). */
  insideScripts: number;
  /** Everything else (the bus's wake publishes, SUBSCRIBE, PING). */
  other: number;
}

function redisSplit(before: Record<string, number>, after: Record<string, number>): RedisSplit {
  const split: RedisSplit = { total: 0, scriptCalls: 0, insideScripts: 0, other: 0 };
  for (const [command, calls] of Object.entries(after)) {
    if (command === 'info') continue;
    const delta = calls - (before[command] ?? 0);
    if (delta <= 0) continue;
    split.total += delta;
    if (SCRIPT_CALLS.includes(command)) split.scriptCalls += delta;
    else if (SCRIPT_INNER_COMMANDS.has(command)) split.insideScripts += delta;
    else split.other += delta;
  }
  return split;
}

const perPoll = (count: number | undefined, polls: number): number | null => (count === undefined || polls === 0 ? null : count / polls);

/** One window of a run: the polls made in it, what Redis did, what was published to the presence channel. */
interface CountedWindow {
  polls: number;
  redis: RedisSplit | null;
  presencePublishes: number | null;
}

interface Run {
  index: number;
  pair: number;
  presence: Presence;
  result: ModeResult;
  /** First publish → end of the drain (the deliveries themselves). */
  deliveryWindow: CountedWindow;
  /** Before the first poll → the last client's leave (grace + two sweeps after the load): joins, heartbeats, leaves, every poll. */
  wholeRun: CountedWindow;
  /** MariaDB / Redis per delivered message in the delivery window. */
  counters: BackendCost | null;
  /** Server CPU seconds per 1,000 deliveries, delivery window. */
  cpuPer1000: number | null;
  profile?: string;
}

/** Counts the presence channel's messages (one PUBLISH each) on a connection of our own. */
async function listenToPresenceChannel(prefix: string | undefined): Promise<{ readonly messages: number; close(): void } | undefined> {
  const servers = realServers();
  if (!servers || prefix === undefined) return undefined;
  const subscriber = new Redis(servers.redisUrl, { lazyConnect: true, enableReadyCheck: false, maxRetriesPerRequest: 1 });
  await subscriber.connect();
  let messages = 0;
  subscriber.on('message', () => (messages += 1));
  await subscriber.subscribe(presenceChannel(prefix));
  return {
    get messages() {
      return messages;
    },
    close: () => subscriber.disconnect(),
  };
}

function get(url: string, token: string, agent: http.Agent, signal?: AbortSignal): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const outgoing = http.get(url, { agent, headers: { authorization: `Bearer ${token}` }, ...(signal ? { signal } : {}) });
    outgoing.on('response', (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, text }));
      response.on('error', reject);
    });
    outgoing.on('error', reject);
  });
}

interface QueryMeasurement {
  what: string;
  latencyMs: LatencySummary;
  /** Per request: EVALSHA + EVAL in the window around it (INFO before, request, INFO after). */
  scriptCallsPerRequest: { min: number; median: number; max: number; mean: number; histogram: Record<string, number> };
  /** Per request: every command (scripts' insides included) and those neither a script call nor inside one. */
  commandsPerRequest: { median: number; mean: number; otherMax: number };
  /** The same windows with no request (length: the median request): the heartbeat and anything else running. */
  idleScriptCallsMean: number;
  idleCommandsMean: number;
  /** mean(request windows) − mean(idle windows). */
  scriptCallsNetOfBackground: number;
  commandsNetOfBackground: number;
  /** MariaDB statements over all the timed requests (server-wide). */
  sqlStatements: number | null;
  /** Median request's window has exactly one script call and none fewer ever happened. */
  oneRoundTrip: boolean | null;
}

/** The middle value; of an even count, the mean of the two middle ones. */
const median = (values: readonly number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};
const mean = (values: readonly number[]) => (values.length === 0 ? NaN : values.reduce((sum, value) => sum + value, 0) / values.length);

async function commandStats(): Promise<Record<string, number> | undefined> {
  return statsRedis ? parseCommandStats(await statsRedis.info('commandstats')) : undefined;
}

const sqlOf = (before: BackendSnapshot | undefined, after: BackendSnapshot | undefined) =>
  before && after ? ['Com_insert', 'Com_update', 'Com_select', 'Com_delete'].reduce((sum, name) => sum + (after.mariadb[name] ?? 0) - (before.mariadb[name] ?? 0), 0) : null;

/** Times `request` `count` times, each inside its own commandstats window, then as many idle windows. */
async function measureQuery(what: string, count: number, request: () => Promise<void>): Promise<QueryMeasurement> {
  for (let warm = 0; warm < 5; warm++) await request();
  const latencies: number[] = [];
  const scriptCalls: number[] = [];
  const commands: number[] = [];
  const other: number[] = [];
  const sqlBefore = await counters?.snapshot();
  for (let round = 0; round < count; round++) {
    const before = await commandStats();
    const started = performance.now();
    await request();
    latencies.push(performance.now() - started);
    const after = await commandStats();
    if (before && after) {
      const split = redisSplit(before, after);
      scriptCalls.push(split.scriptCalls);
      commands.push(split.total);
      other.push(split.other);
    }
  }
  const sqlAfter = await counters?.snapshot();
  const idleScriptCalls: number[] = [];
  const idleCommands: number[] = [];
  const idleMs = median(latencies);
  for (let round = 0; round < count && statsRedis; round++) {
    const before = (await commandStats())!;
    await sleep(idleMs);
    const split = redisSplit(before, (await commandStats())!);
    idleScriptCalls.push(split.scriptCalls);
    idleCommands.push(split.total);
  }
  const histogram: Record<string, number> = {};
  for (const calls of scriptCalls) histogram[calls] = (histogram[calls] ?? 0) + 1;
  const counted = scriptCalls.length > 0;
  return {
    what,
    latencyMs: summarizeLatencies(latencies),
    scriptCallsPerRequest: { min: Math.min(...scriptCalls), median: median(scriptCalls), max: Math.max(...scriptCalls), mean: mean(scriptCalls), histogram },
    commandsPerRequest: { median: median(commands), mean: mean(commands), otherMax: Math.max(...other) },
    idleScriptCallsMean: mean(idleScriptCalls),
    idleCommandsMean: mean(idleCommands),
    scriptCallsNetOfBackground: mean(scriptCalls) - mean(idleScriptCalls),
    commandsNetOfBackground: mean(commands) - mean(idleCommands),
    sqlStatements: sqlOf(sqlBefore, sqlAfter),
    oneRoundTrip: counted ? Math.min(...scriptCalls) === TARGET_ROUND_TRIPS && median(scriptCalls) === TARGET_ROUND_TRIPS : null,
  };
}

/**
 * On a presence-on gateway: 100 users hold polls reading TOPIC (each its own client), then each
 * query is measured with all of them online and members.
 */
async function measureQueries(url: string, runPrefix: string): Promise<QueryMeasurement[]> {
  const users = Array.from({ length: QUERY_USERS }, (_, index) => `${runPrefix}-q${index}`);
  const tokens = await Promise.all(users.map((user) => issuer.issue(user, { topics: { [TOPIC]: ['read'] } })));
  const observer = await issuer.issue(`${runPrefix}-observer`, { scope: ['presence'], topics: { [TOPIC]: ['presence'] } });
  const pollAgent = new http.Agent({ keepAlive: true, maxSockets: QUERY_USERS + 10 });
  const queryAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const stop = new AbortController();
  // Every held poll listens for the stop.
  setMaxListeners(0, stop.signal);
  let pollErrors = 0;
  const loops = users.map(async (_, index) => {
    let cursor = 0;
    while (!stop.signal.aborted) {
      try {
        const answer = await get(`${url}/v1/poll?wait=60&cursor=${cursor}&client=q${index}&topic=${TOPIC}`, tokens[index]!, pollAgent, stop.signal);
        if (answer.status !== 200) throw new Error(`poll answered ${answer.status}: ${answer.text.slice(0, 200)}`);
        cursor = (JSON.parse(answer.text) as { cursor: number }).cursor;
      } catch {
        if (stop.signal.aborted) return;
        pollErrors += 1;
        await sleep(100);
      }
    }
  });
  const usersUrl = `${url}/v1/presence?${users.map((user) => `user=${encodeURIComponent(user)}`).join('&')}`;
  const topicUrl = `${url}/v1/topics/${TOPIC}/presence`;
  const askUsers = async () => {
    const answer = await get(usersUrl, observer, queryAgent);
    if (answer.status !== 200) throw new Error(`GET /v1/presence answered ${answer.status}: ${answer.text.slice(0, 200)}`);
    return Object.values((JSON.parse(answer.text) as { users: Record<string, { online: boolean }> }).users).filter((user) => user.online).length;
  };
  const askTopic = async () => {
    const answer = await get(topicUrl, observer, queryAgent);
    if (answer.status !== 200) throw new Error(`GET ${topicUrl} answered ${answer.status}: ${answer.text.slice(0, 200)}`);
    const body = JSON.parse(answer.text) as { count: number; members?: unknown[] };
    return Math.min(body.count, body.members?.length ?? 0);
  };
  try {
    // Every join is written (batched per tick) before anything is measured.
    const deadline = Date.now() + 30_000;
    while ((await askTopic()) < QUERY_USERS || (await askUsers()) < QUERY_USERS) {
      if (Date.now() > deadline) throw new Error(`the ${QUERY_USERS} query users did not all show as online and members within 30 s (poll errors: ${pollErrors})`);
      await sleep(100);
    }
    const expect = (found: number, what: string) => {
      if (found !== QUERY_USERS) throw new Error(`${what} answered ${found} of ${QUERY_USERS} users`);
    };
    return [
      await measureQuery(`GET /v1/presence, ${QUERY_USERS} online users`, queries, async () => expect(await askUsers(), 'GET /v1/presence')),
      await measureQuery(`GET /v1/topics/{name}/presence, ${QUERY_USERS} members`, queries, async () => expect(await askTopic(), 'GET /v1/topics/{name}/presence')),
    ];
  } finally {
    stop.abort();
    pollAgent.destroy();
    queryAgent.destroy();
    await Promise.allSettled(loops);
  }
}

async function runLoad(index: number, pair: number, presence: Presence, thenQueries: boolean): Promise<{ run: Run; queries: QueryMeasurement[] | null }> {
  const profileName = `presence-${presence}-${index + 1}.cpuprofile`;
  const profile = values['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${values['cpu-prof']}`, `--cpu-prof-name=${profileName}`] : [];
  const peer = await startPeer('gateway', secret, { PRESENCE_GRACE_S: presence === 'on' ? String(graceS) : '0', MAX_HELD_POLLS: String(clients + QUERY_USERS + 1000) }, profile);
  const runPrefix = `presence-${randomBytes(3).toString('hex')}`;
  const channel = await listenToPresenceChannel(peer.redisPrefix);
  try {
    pinning.server(peer.pid);
    let polls = 0;
    // Every simulated client is one poller instance of its own user, as a browser tab would be.
    const createTarget = (options: GatewayTargetOptions): BenchTarget => {
      const target = createGatewayTarget({ ...options, pollQuery: (client) => `client=c${client}&presence=1` });
      return {
        poll(...args) {
          polls += 1;
          return target.poll(...args);
        },
        publish: (...args) => target.publish(...args),
        ...(target.publishBatch ? { publishBatch: (items) => target.publishBatch!(items) } : {}),
        get pollWaitMaxS() {
          return target.pollWaitMaxS;
        },
        ...(target.traffic ? { traffic: target.traffic } : {}),
        ...(target.workerIdsSeen ? { workerIdsSeen: target.workerIdsSeen } : {}),
        close: () => target.close(),
      };
    };
    const meter = meterDeliveries(counters);
    const delivery = { polls: 0, presencePublishes: 0, stats: undefined as Record<string, number> | undefined, split: null as RedisSplit | null };
    const hooks = {
      deliveryWindow: () => {
        const inner = meter.hooks.deliveryWindow();
        return {
          async start() {
            await inner.start();
            delivery.stats = await commandStats();
            delivery.polls = polls;
            delivery.presencePublishes = channel?.messages ?? 0;
          },
          async end() {
            delivery.polls = polls - delivery.polls;
            delivery.presencePublishes = (channel?.messages ?? 0) - delivery.presencePublishes;
            const after = await commandStats();
            delivery.split = delivery.stats && after ? redisSplit(delivery.stats, after) : null;
            await inner.end();
          },
        };
      },
    };

    const wholeBefore = await commandStats();
    const publishesBefore = channel?.messages ?? 0;
    const options = parseBenchArgs(
      ['--url', peer.url, '--secret', secret, '--clients', String(clients), '--rate', String(rate), '--duration', String(durationS), '--short', 'none', '--long', '25', '--server-pid', String(peer.pid), '--drain-timeout', '30', '--user-prefix', runPrefix],
      {},
    );
    options.progress = process.stderr.isTTY === true;
    const bench = await runBench(options, quiet, createTarget, hooks);
    for (const warning of bench.warnings) process.stderr.write(`presence ${presence} (run ${index + 1}): warning: ${warning}\n`);
    const result = bench.modes[0]!;
    // Every client's leave is written by the first sweep after its grace: wait for it in both runs alike.
    const sweepS = Math.min(1, graceS / 3);
    await sleep((graceS + 2 * sweepS + 1) * 1000);
    const wholeAfter = await commandStats();
    const run: Run = {
      index,
      pair,
      presence,
      result,
      deliveryWindow: { polls: delivery.polls, redis: delivery.split, presencePublishes: channel ? delivery.presencePublishes : null },
      wholeRun: { polls, redis: wholeBefore && wholeAfter ? redisSplit(wholeBefore, wholeAfter) : null, presencePublishes: channel ? channel.messages - publishesBefore : null },
      counters: meter.cost(result.delivered),
      cpuPer1000: result.server?.deliveryWindow?.cpuSecondsPer1000Messages ?? null,
      ...(values['cpu-prof'] ? { profile: join(values['cpu-prof'], profileName) } : {}),
    };
    process.stderr.write(`presence ${presence} (run ${index + 1}): ${result.delivered} delivered, ${fmt(run.cpuPer1000, 3)} CPU s/1000, p99 ${fmt(result.latencyMs.p99, 1)} ms\n`);
    const measured = thenQueries ? await measureQueries(peer.url, runPrefix) : null;
    return { run, queries: measured };
  } finally {
    channel?.close();
    await peer.stop();
  }
}

/** Alternating pairs, the second of each pair reversed (on off, off on, …): a linear drift hits both sides alike. */
const order: Array<{ pair: number; presence: Presence }> = [];
for (let pair = 0; pair < pairs; pair++) {
  const [first, second]: Presence[] = pair % 2 === 0 ? ['on', 'off'] : ['off', 'on'];
  order.push({ pair, presence: first! }, { pair, presence: second! });
}
const lastOn = order.map((entry) => entry.presence).lastIndexOf('on');

const runs: Run[] = [];
let queryResults: QueryMeasurement[] | null = null;
try {
  for (const [index, { pair, presence }] of order.entries()) {
    const { run, queries: measured } = await runLoad(index, pair, presence, index === lastOn);
    runs.push(run);
    if (measured) queryResults = measured;
  }
} finally {
  await counters?.close();
  statsRedis?.disconnect();
}
const loadAfter = loadavg();

const faulty = (result: ModeResult) => result.lost + result.duplicated + result.misrouted > 0 || result.truncated !== null;
const sound = runs.every((run) => !faulty(run.result));
/** Presence's own Redis commands: its script calls and its channel's publishes. */
const presenceCommands = (window: CountedWindow) => (window.redis === null ? undefined : window.redis.scriptCalls + (window.presencePublishes ?? 0));

const pairRatios = Array.from({ length: pairs }, (_, pair) => {
  const on = runs.find((run) => run.pair === pair && run.presence === 'on');
  const off = runs.find((run) => run.pair === pair && run.presence === 'off');
  const ratio = (a: number | null | undefined, b: number | null | undefined) => (a === null || a === undefined || b === null || b === undefined || b === 0 ? null : a / b);
  return {
    pair: pair + 1,
    order: pair % 2 === 0 ? 'on, off' : 'off, on',
    cpuPer1000: ratio(on?.cpuPer1000, off?.cpuPer1000),
    cpuPer1000WholeMode: ratio(on?.result.server?.cpuSecondsPer1000Messages, off?.result.server?.cpuSecondsPer1000Messages),
    p50: ratio(on?.result.latencyMs.p50, off?.result.latencyMs.p50),
    p99: ratio(on?.result.latencyMs.p99, off?.result.latencyMs.p99),
  };
});
const medianOf = (values: Array<number | null>) => {
  const known = values.filter((value): value is number => value !== null);
  return known.length === 0 ? null : median(known);
};
const cpuRatio = medianOf(pairRatios.map((entry) => entry.cpuPer1000));
const onRuns = runs.filter((run) => run.presence === 'on');
/** Worst (highest) presence-on run. */
const worst = (values: Array<number | null>) => {
  const known = values.filter((value): value is number => value !== null);
  return known.length === 0 ? null : Math.max(...known);
};
const presencePerPollWhole = worst(onRuns.map((run) => perPoll(presenceCommands(run.wholeRun), run.wholeRun.polls)));
const presencePerPollSteady = worst(onRuns.map((run) => perPoll(presenceCommands(run.deliveryWindow), run.deliveryWindow.polls)));
const [usersQuery, topicQuery] = queryResults ?? [];

const verdicts = {
  cpuOnVsOff: cpuRatio === null ? null : sound && cpuRatio <= TARGET_CPU_ON_VS_OFF,
  presenceRedisPerPoll: presencePerPollWhole === null ? null : sound && presencePerPollWhole <= TARGET_PRESENCE_REDIS_PER_POLL,
  usersQueryOneRoundTrip: usersQuery?.oneRoundTrip ?? null,
  topicQueryOneRoundTrip: topicQuery?.oneRoundTrip ?? null,
};
const verdict = (met: boolean | null) => (met === null ? '-' : met ? 'PASS' : 'MISS');

const runTable = formatTable([
  ['window', 'run', 'presence', 'polls', 'Redis cmds/poll', 'script calls/poll', 'inside scripts/poll', 'presence pubs/poll', 'other/poll', 'presence cmds/poll'],
  ...runs.flatMap((run) =>
    (['deliveryWindow', 'wholeRun'] as const).map((key) => {
      const window = run[key];
      return [
        key === 'deliveryWindow' ? 'deliveries' : 'whole run',
        String(run.index + 1),
        run.presence,
        String(window.polls),
        fmt(perPoll(window.redis?.total, window.polls), 3),
        fmt(perPoll(window.redis?.scriptCalls, window.polls), 4),
        fmt(perPoll(window.redis?.insideScripts, window.polls), 3),
        fmt(perPoll(window.presencePublishes ?? undefined, window.polls), 4),
        fmt(perPoll(window.redis?.other, window.polls), 3),
        fmt(perPoll(presenceCommands(window), window.polls), 4),
      ];
    }),
  ),
]);

const queryTable = queryResults
  ? formatTable([
      ['query', 'requests', 'p50 ms', 'p95 ms', 'max ms', 'EVALSHA+EVAL per request: min / median / max', 'net of idle', 'all cmds per request (median)', 'net of idle', 'other cmds (max)', 'SQL stmts (all requests)'],
      ...queryResults.map((query) => [
        query.what,
        String(query.latencyMs.count),
        fmt(query.latencyMs.p50, 2),
        fmt(query.latencyMs.p95, 2),
        fmt(query.latencyMs.max, 2),
        `${fmt(query.scriptCallsPerRequest.min, 0)} / ${fmt(query.scriptCallsPerRequest.median, 0)} / ${fmt(query.scriptCallsPerRequest.max, 0)}`,
        fmt(query.scriptCallsNetOfBackground, 2),
        fmt(query.commandsPerRequest.median, 0),
        fmt(query.commandsNetOfBackground, 1),
        fmt(query.commandsPerRequest.otherMax, 0),
        query.sqlStatements === null ? '-' : String(query.sqlStatements),
      ]),
    ])
  : 'presence queries: not measured';

const verdictTable = formatTable([
  ['target', 'measured', 'holds'],
  [`1. server CPU per delivery, on ÷ off, median of ${pairs} pair(s) (≤ ${TARGET_CPU_ON_VS_OFF})`, fmt(cpuRatio, 3), verdict(verdicts.cpuOnVsOff)],
  [`2. presence Redis cmds per poll, whole run, worst on run (≤ ${TARGET_PRESENCE_REDIS_PER_POLL})`, fmt(presencePerPollWhole, 4), verdict(verdicts.presenceRedisPerPoll)],
  ['   (the same in the delivery window: steady state, no joins or leaves)', fmt(presencePerPollSteady, 4), ''],
  [`3. GET /v1/presence, ${QUERY_USERS} users: Redis round trips (= ${TARGET_ROUND_TRIPS})`, usersQuery ? fmt(usersQuery.scriptCallsPerRequest.median, 0) : '-', verdict(verdicts.usersQueryOneRoundTrip)],
  [`4. GET /v1/topics/{name}/presence, ${QUERY_USERS} members: round trips (= ${TARGET_ROUND_TRIPS})`, topicQuery ? fmt(topicQuery.scriptCallsPerRequest.median, 0) : '-', verdict(verdicts.topicQueryOneRoundTrip)],
]);

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

/** Self time of a profile's frames: the busy total, and the top frames of the presence code (src/presence, and presence-named functions elsewhere). */
function profileFrames(file: string, top = 12): { busyMs: number; presenceMs: number; topPresence: Array<[string, number]>; top: Array<[string, number]> } {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] };
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const functions = new Map<string, number>();
  let busyMs = 0;
  profile.samples.forEach((id, index) => {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    if (functionName === '(idle)') return;
    const ms = (profile.timeDeltas[index] ?? 0) / 1000;
    busyMs += ms;
    const key = `${functionName || '(anonymous)'} ${url.replace(/^.*node_modules\//, '').replace(/^.*\/dist\//, '')}:${lineNumber + 1}`;
    functions.set(key, (functions.get(key) ?? 0) + ms);
  });
  const sorted = [...functions].sort((a, b) => b[1] - a[1]);
  const presence = sorted.filter(([key]) => /presence/i.test(key));
  return { busyMs, presenceMs: presence.reduce((sum, [, ms]) => sum + ms, 0), topPresence: presence.slice(0, top), top: sorted.slice(0, top) };
}

const profiles = values['cpu-prof']
  ? runs.map((run) => {
      try {
        return { run: run.index + 1, presence: run.presence, delivered: run.result.delivered, file: run.profile!, ...profileFrames(run.profile!) };
      } catch (error) {
        return { run: run.index + 1, presence: run.presence, delivered: run.result.delivered, file: run.profile!, error: (error as Error).message };
      }
    })
  : [];
const profileNotes = profiles.map((entry) =>
  'error' in entry
    ? `profile of run ${entry.run}: ${entry.error}`
    : [
        `CPU profile of run ${entry.run} (presence ${entry.presence}, the whole process life): busy ${fmt(entry.busyMs, 0)} ms, presence frames ${fmt(entry.presenceMs, 0)} ms (${fmt((100 * entry.presenceMs) / entry.busyMs, 1)}%)`,
        ...entry.topPresence.map(([name, ms]) => `  presence ${fmt(ms, 0).padStart(6)} ms  ${name}`),
        ...entry.top.map(([name, ms]) => `  top      ${fmt(ms, 0).padStart(6)} ms  ${name}`),
      ].join('\n'),
);

report(
  'presence',
  ['run', 'pair', 'presence', 'delivered', 'lost+dup', 'p50 ms', 'p99 ms', 'max ms', 'srv CPU s/1000 msg', '(whole mode)', 'gen CPU', 'SQL/delivery', 'Redis cmds/poll', 'presence cmds/poll', '(whole run)'],
  runs.map((run) => [
    run.index + 1,
    run.pair + 1,
    run.presence,
    run.result.delivered,
    run.result.lost + run.result.duplicated + run.result.misrouted,
    fmt(run.result.latencyMs.p50, 2),
    fmt(run.result.latencyMs.p99, 2),
    fmt(run.result.latencyMs.max, 1),
    fmt(run.cpuPer1000, 3),
    fmt(run.result.server?.cpuSecondsPer1000Messages, 3),
    `${Math.round(run.result.loadGenerator.cpuShareOfOneCore * 100)}%${run.result.loadGeneratorBound ? '!' : ''}`,
    fmt(run.counters?.sqlStatementsPerMessage, 2),
    fmt(perPoll(run.deliveryWindow.redis?.total, run.deliveryWindow.polls), 3),
    fmt(perPoll(presenceCommands(run.deliveryWindow), run.deliveryWindow.polls), 4),
    fmt(perPoll(presenceCommands(run.wholeRun), run.wholeRun.polls), 4),
  ]),
  {
    clients,
    rate,
    durationS,
    pairs,
    graceS,
    queryRequests: queries,
    pinning: pinning.description,
    loadAverage: { before: loadBefore, after: loadAfter },
    cpuPer1000: 'server CPU from the first publish to the end of the drain (result.server.deliveryWindow); (whole mode) = opening and closing the polls included',
    presenceCommands: 'EVALSHA + EVAL (the presence registry is the only script user) + messages on the presence channel; commands run inside the scripts are counted apart',
    runs: runs.map((run) => ({ ...run, result: { ...run.result, latencySeries: undefined } })),
    pairRatios,
    queries: queryResults,
    profiles: profiles.map((entry) => ({ ...entry })),
    targets: {
      cpuOnVsOff: { measured: cpuRatio, target: TARGET_CPU_ON_VS_OFF },
      presenceRedisPerPoll: { measured: presencePerPollWhole, steadyState: presencePerPollSteady, target: TARGET_PRESENCE_REDIS_PER_POLL },
      usersQueryRoundTrips: { measured: usersQuery?.scriptCallsPerRequest.median ?? null, target: TARGET_ROUND_TRIPS },
      topicQueryRoundTrips: { measured: topicQuery?.scriptCallsPerRequest.median ?? null, target: TARGET_ROUND_TRIPS },
    },
    verdicts,
  },
  [
    formatTable([
      ['pair', 'order', 'CPU/1000 on ÷ off', '(whole mode)', 'p50 on ÷ off', 'p99 on ÷ off'],
      ...pairRatios.map((entry) => [String(entry.pair), entry.order, fmt(entry.cpuPer1000, 3), fmt(entry.cpuPer1000WholeMode, 3), fmt(entry.p50, 2), fmt(entry.p99, 2)]),
    ]),
    runTable,
    'Redis per poll: "deliveries" = first publish → end of the drain; "whole run" = before the first poll → after every client\'s grace ended (joins, heartbeats and leaves included). ' +
      'script calls = EVALSHA + EVAL (round trips of the presence registry); inside scripts = what those scripts ran inside Redis (commandstats counts it); ' +
      'presence cmds = script calls + presence channel publishes. Server-wide counters: other clients of the same Redis add to them.',
    queryTable,
    'Each request is timed inside its own INFO commandstats window; idle windows of the median request\'s length measure what runs anyway (the 1/s heartbeat). ' +
      '"other cmds" = neither a script call nor run inside one: 0 means the request sent nothing else to Redis.',
    verdictTable,
    formatBackendCostTable(runs.map((run) => ({ what: `run ${run.index + 1} presence ${run.presence}`, cost: run.counters }))),
    `load average (1/5/15 min): before ${loadBefore.map((value) => value.toFixed(2)).join(' ')}, after ${loadAfter.map((value) => value.toFixed(2)).join(' ')}`,
    ...profileNotes,
  ],
);
process.exit(sound ? 0 : 1);
