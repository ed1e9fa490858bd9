/**
 * Fault injection: real gateway processes on their own MariaDB and Redis, real clients (the
 * project's createLongPoller + publish), and a fixed number of messages per fault while Redis,
 * MariaDB and the gateways are killed and restarted. Everything is checked from the client side:
 * every confirmed publish arrives exactly once after client dedup, in per-sender order.
 *
 *   npm run build && npx tsx scripts/faults.ts            # full run (a few minutes)
 *   npm run build && npx tsx scripts/faults.ts --short    # the CI variant (test/e2e/faults.test.ts)
 *
 * Loopback only and bounded. MariaDB and Redis are started here, on free ports with data
 * directories under the OS temp dir, and removed at the end: the shared servers on 3306/6379
 * are never touched. Needs `mariadbd`, `mariadb-install-db` and `redis-server` (scripts/services.sh
 * installs them) and a build (`npm run build`) for the gateway CLI.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { createTokenIssuer } from '../src/auth/tokens.js';
import { createLongPoller, publish, type FetchLike, type Poller } from '../src/client/index.js';
import { spawnGateway, type GatewayProcess } from '../test/support/process.js';

const run = promisify(execFile);
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const SECRET = 'faults-secret-0123456789abcdef0123456789';
const DB_USER = 'gateway';
const DB_PASS = 'faults-password';
const DB_NAME = 'lpg_faults';

export interface FaultRunOptions {
  short?: boolean;
  /** Progress lines; default: stderr. */
  log?: (line: string) => void;
}

export interface PhaseReport {
  fault: string;
  /** Publishes confirmed with a 2xx (the publisher retries until it gets one). */
  published: number;
  /** Distinct published messages that reached their recipient's onMessages. */
  delivered: number;
  lost: number;
  /** Messages handed to onMessages more than once, after the client's dedup by id. */
  duplicated: number;
  /** Messages that came back in a poll response again (before dedup): at-least-once at work. */
  rawRedeliveries: number;
  /** Publish answers with `duplicate: true`: a retry of a publish whose first answer was lost. */
  publishRetriesDeduplicated: number;
  orderViolations: number;
  /** Milliseconds from the last confirmed publish of the phase until its last message was delivered. */
  catchUpMs: number;
  /** For store faults: what a publish got while MariaDB was down. */
  storeDownPublish?: { status: number; retryAfter: string | null; code: string | undefined; storedAnyway: boolean };
}

/**
 * A free port below the kernel's ephemeral range (32768+ on Linux): the gateways, MariaDB and
 * Redis are restarted on the same port, and in the meantime an ephemeral port could be handed to
 * any outgoing connection on the machine (a parallel test suite's, say).
 */
async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt += 1) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    const free = await new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error('no free port found between 20000 and 32000');
}

async function waitUntil(condition: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

/** A child process we own; killed on exit even if the script dies. */
function own(child: ChildProcess): ChildProcess {
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  child.once('exit', () => process.off('exit', kill));
  return child;
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** A server we run in the foreground, so it is a child we can signal (kill, then start again). */
abstract class ForegroundServer {
  protected child: ChildProcess | undefined;
  async stop(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (!child) return;
    child.kill(signal);
    await exited(child);
    this.child = undefined;
  }
}

/** Our own MariaDB: same flags as scripts/services.sh, its own port, socket and data dir. */
class OwnMariadb extends ForegroundServer {
  constructor(
    private readonly dir: string,
    readonly port: number,
  ) {
    super();
  }
  get socket() {
    return join(this.dir, 'mysqld.sock');
  }
  get url() {
    return `mysql://${DB_USER}:${DB_PASS}@127.0.0.1:${this.port}/${DB_NAME}`;
  }
  async install(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    await run('mariadb-install-db', ['--no-defaults', '--user=root', `--datadir=${join(this.dir, 'data')}`, '--auth-root-authentication-method=socket', '--skip-test-db']);
    await this.start();
    await run('mariadb', [
      `--socket=${this.socket}`,
      '-uroot',
      '-e',
      `CREATE DATABASE ${DB_NAME} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin; CREATE USER '${DB_USER}'@'%' IDENTIFIED BY '${DB_PASS}'; GRANT ALL PRIVILEGES ON ${DB_NAME}.* TO '${DB_USER}'@'%';`,
    ]);
  }
  async start(): Promise<void> {
    this.child = own(
      spawn(
        'mariadbd',
        [
          '--no-defaults',
          '--user=root',
          `--datadir=${join(this.dir, 'data')}`,
          `--socket=${this.socket}`,
          `--port=${this.port}`,
          '--bind-address=127.0.0.1',
          '--skip-name-resolve',
          `--pid-file=${join(this.dir, 'mysqld.pid')}`,
          `--log-error=${join(this.dir, 'error.log')}`,
          '--character-set-server=utf8mb4',
          '--collation-server=utf8mb4_bin',
          '--innodb-flush-log-at-trx-commit=2',
          '--innodb-buffer-pool-size=64M',
        ],
        { stdio: 'ignore' },
      ),
    );
    await waitUntil(
      () =>
        run('mariadb-admin', [`--socket=${this.socket}`, '-uroot', 'ping']).then(
          () => true,
          () => false,
        ),
      30_000,
      'mariadbd to start',
    );
  }
}

/** Our own Redis: in the foreground, so it is a child we can signal. */
class OwnRedis extends ForegroundServer {
  constructor(
    private readonly dir: string,
    readonly port: number,
  ) {
    super();
  }
  get url() {
    return `redis://127.0.0.1:${this.port}`;
  }
  async start(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    this.child = own(spawn('redis-server', ['--bind', '127.0.0.1', '--port', String(this.port), '--dir', this.dir, '--save', '', '--appendonly', 'no'], { stdio: 'ignore' }));
    await waitUntil(
      () =>
        run('redis-cli', ['-h', '127.0.0.1', '-p', String(this.port), 'ping']).then(
          ({ stdout }) => stdout.trim() === 'PONG',
          () => false,
        ),
      10_000,
      'redis-server to start',
    );
  }
}

interface Delivery {
  sender: string;
  seq: number;
  phase: string;
}

interface Receiver {
  user: string;
  poller: Poller;
  /** Logical message key (`sender:seq`) → how many times onMessages got it. */
  received: Map<string, number>;
  lastSeqBySender: Map<string, number>;
  rawSeen: Set<number>;
}

/**
 * @example
 * const phases = await runFaults({ short: true });
 * console.table(phases);
 */
export async function runFaults(options: FaultRunOptions = {}): Promise<PhaseReport[]> {
  const short = options.short ?? false;
  const log = options.log ?? ((line: string) => process.stderr.write(`[faults] ${line}\n`));
  const messagesPerPhase = short ? 60 : 300;
  const senders = ['s-ann', 's-ben', 's-cat'];
  const receivers = ['r-dan', 'r-eve', 'r-fay', 'r-gus'];
  const publishPauseMs = short ? 40 : 25;
  const downtimeMs = short ? 1_500 : 4_000;
  const settleTimeoutMs = short ? 20_000 : 45_000;

  const root = await mkdtemp(join(tmpdir(), 'lpg-faults-'));
  const mariadb = new OwnMariadb(join(root, 'mysql'), await freePort());
  const redis = new OwnRedis(join(root, 'redis'), await freePort());
  const gatewayPorts = [await freePort(), await freePort()];
  const gateways: Array<GatewayProcess | undefined> = [undefined, undefined];
  const pollers: Poller[] = [];
  const issuer = createTokenIssuer({ secret: SECRET });

  const gatewayEnv = (index: number): Record<string, string> => ({
    PORT: String(gatewayPorts[index]),
    MYSQL_URL: mariadb.url,
    REDIS_URL: redis.url,
    REDIS_PREFIX: 'faults:',
    GATEWAY_JWT_SECRET: SECRET,
    POLL_WAIT_MAX_S: '5',
    SHUTDOWN_GRACE_MS: '3000',
    LOG_LEVEL: 'error',
    RETENTION_ACKED_HOURS: '0',
    // One process per gateway, so that a signal reaches the process serving the requests.
    GATEWAY_WORKERS: '1',
  });
  const urlOf = (index: number) => `http://127.0.0.1:${gatewayPorts[index]}/`;
  async function startGatewayProcess(index: number): Promise<void> {
    gateways[index] = await spawnGateway(gatewayEnv(index));
  }

  try {
    log(`own MariaDB on 127.0.0.1:${mariadb.port}, Redis on 127.0.0.1:${redis.port}, data under ${root}`);
    await Promise.all([mariadb.install(), redis.start()]);
    await startGatewayProcess(0);
    await startGatewayProcess(1);
    log(`gateways on ${urlOf(0)} and ${urlOf(1)}`);

    let rawRedeliveries = 0;
    let orderViolations = 0;
    // Receivers: alternate between the two gateways, each with the shipped long poller.
    const state: Receiver[] = [];
    for (const [index, user] of receivers.entries()) {
      const receiver: Receiver = { user, poller: undefined as unknown as Poller, received: new Map(), lastSeqBySender: new Map(), rawSeen: new Set() };
      // Counts what the server sent before the client's dedup: redeliveries are expected.
      const countingFetch: FetchLike = async (input, init) => {
        const response = await fetch(input, init);
        if (input.includes('/v1/poll') && response.ok) {
          response
            .clone()
            .json()
            .then(
              (page: { messages?: Array<{ id: number }> }) => {
                for (const message of page.messages ?? []) {
                  if (receiver.rawSeen.has(message.id)) rawRedeliveries += 1;
                  else receiver.rawSeen.add(message.id);
                }
              },
              () => {},
            );
        }
        return response;
      };
      receiver.poller = createLongPoller<Delivery>({
        url: urlOf(index % 2),
        token: await issuer.issue(user),
        wait: 5,
        fetch: countingFetch,
        backoff: { minDelayMs: 100, maxDelayMs: 1_000 },
        onMessages: (messages) => {
          for (const { body } of messages) {
            const key = `${body.sender}:${body.seq}`;
            receiver.received.set(key, (receiver.received.get(key) ?? 0) + 1);
            if (body.seq <= (receiver.lastSeqBySender.get(body.sender) ?? 0)) orderViolations += 1;
            receiver.lastSeqBySender.set(body.sender, body.seq);
          }
        },
      });
      void receiver.poller.start();
      pollers.push(receiver.poller);
      state.push(receiver);
    }

    const senderTokens = await Promise.all(senders.map((sender) => issuer.issue(sender)));
    const nextSeq = new Map(senders.map((sender) => [sender, 0]));
    const deliveredCount = (key: string, to: string) => state.find((receiver) => receiver.user === to)!.received.get(key) ?? 0;

    /** Sequential per sender (so "per-sender order" is well defined); retries until confirmed. */
    async function publishRun(senderIndex: number, count: number, phase: string, confirmed: Array<{ key: string; to: string }>, counters: { deduplicated: number }): Promise<void> {
      const sender = senders[senderIndex]!;
      for (let i = 0; i < count; i += 1) {
        const seq = nextSeq.get(sender)! + 1;
        nextSeq.set(sender, seq);
        const to = receivers[(seq + senderIndex) % receivers.length]!;
        for (let attempt = 1; ; attempt += 1) {
          try {
            const result = await publish({
              url: urlOf(senderIndex % 2),
              token: senderTokens[senderIndex]!,
              to,
              id: `${sender}-${seq}`,
              body: { sender, seq, phase },
              retries: 3,
              backoff: { minDelayMs: 100, maxDelayMs: 1_000 },
              timeoutMs: 5_000,
            });
            if (result.duplicate) counters.deduplicated += 1;
            confirmed.push({ key: `${sender}:${seq}`, to });
            break;
          } catch (error) {
            const status = (error as { status?: number }).status;
            if (status !== undefined && status >= 400 && status < 500 && status !== 429) throw error;
            if (attempt > 200) throw new Error(`publish ${sender}-${seq} still failing after ${attempt} attempts: ${String(error)}`);
            await sleep(200);
          }
        }
        await sleep(publishPauseMs);
      }
    }

    async function runPhase(fault: string, inject: () => Promise<Partial<PhaseReport> | void>): Promise<PhaseReport> {
      log(`phase ${fault}: ${messagesPerPhase} messages`);
      const confirmed: Array<{ key: string; to: string }> = [];
      const counters = { deduplicated: 0 };
      const rawBefore = rawRedeliveries;
      const orderBefore = orderViolations;
      const perSender = Math.ceil(messagesPerPhase / senders.length);
      const publishing = Promise.all(senders.map((_, index) => publishRun(index, perSender, fault, confirmed, counters)));
      // Inject the fault with traffic in flight: after about a third of the phase is published.
      await waitUntil(() => confirmed.length >= messagesPerPhase / 3, 60_000, `${fault}: first third published`);
      const faultAt = Date.now();
      const extra = (await inject()) ?? {};
      await publishing;
      const publishedAt = Date.now();
      const allDelivered = () => confirmed.every(({ key, to }) => deliveredCount(key, to) >= 1);
      await waitUntil(allDelivered, settleTimeoutMs, `${fault}: every message delivered`).catch((error: unknown) => log(String(error)));
      const catchUpMs = Date.now() - publishedAt;
      const faultMs = Date.now() - faultAt;
      // A short grace so late duplicates, if any, would be counted.
      await sleep(300);
      const delivered = confirmed.filter(({ key, to }) => deliveredCount(key, to) >= 1).length;
      const duplicated = confirmed.filter(({ key, to }) => deliveredCount(key, to) > 1).length;
      const report: PhaseReport = {
        fault,
        published: confirmed.length,
        delivered,
        lost: confirmed.length - delivered,
        duplicated,
        rawRedeliveries: rawRedeliveries - rawBefore,
        publishRetriesDeduplicated: counters.deduplicated,
        orderViolations: orderViolations - orderBefore,
        catchUpMs,
        ...extra,
      };
      log(`${JSON.stringify(report)} (${faultMs} ms from the fault to the last delivery)`);
      return report;
    }

    /** A raw publish while the store is down: must be 503 + Retry-After, never a 2xx without a row. */
    async function publishWhileStoreDown(): Promise<{ id: string; status: number; retryAfter: string | null; code: string | undefined }> {
      const id = `probe-${Date.now()}`;
      const response = await fetch(`${urlOf(0)}v1/messages`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${await issuer.issue('s-probe')}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ to: 'r-probe', id, body: 1 }),
      });
      const answer = (await response.json().catch(() => ({}))) as { error?: { code?: string } };
      return { id, status: response.status, retryAfter: response.headers.get('retry-after'), code: answer.error?.code };
    }
    async function storedRows(clientMessageId: string): Promise<number> {
      const { stdout } = await run('mariadb', [`--socket=${mariadb.socket}`, '-uroot', '-N', '-e', `SELECT COUNT(*) FROM ${DB_NAME}.messages WHERE client_msg_id = '${clientMessageId}'`]);
      return Number(stdout.trim());
    }

    const reports: PhaseReport[] = [];
    reports.push(await runPhase('none (baseline)', async () => {}));
    reports.push(
      await runPhase('redis SIGKILL + restart', async () => {
        await redis.stop('SIGKILL');
        await sleep(downtimeMs);
        await redis.start();
      }),
    );
    reports.push(
      await runPhase('mariadb SIGKILL + restart', async () => {
        await mariadb.stop('SIGKILL');
        await sleep(300);
        const { id, ...probe } = await publishWhileStoreDown();
        await sleep(Math.max(0, downtimeMs - 300));
        await mariadb.start();
        return { storeDownPublish: { ...probe, storedAnyway: (await storedRows(id)) > 0 } };
      }),
    );
    reports.push(
      await runPhase('mariadb SIGTERM + restart', async () => {
        await mariadb.stop('SIGTERM');
        await sleep(Math.min(downtimeMs, 1_000));
        await mariadb.start();
      }),
    );
    reports.push(
      await runPhase('gateway SIGKILL + restart', async () => {
        await gateways[0]!.stop('SIGKILL');
        await sleep(Math.min(downtimeMs, 1_000));
        await startGatewayProcess(0);
      }),
    );
    reports.push(
      await runPhase('gateway SIGTERM (drain) + restart', async () => {
        const code = await gateways[1]!.stop('SIGTERM');
        if (code !== 0) throw new Error(`gateway exited ${code} on SIGTERM`);
        await sleep(Math.min(downtimeMs, 1_000));
        await startGatewayProcess(1);
      }),
    );
    reports.push(
      await runPhase('redis + gateway SIGKILL together', async () => {
        await Promise.all([redis.stop('SIGKILL'), gateways[0]!.stop('SIGKILL')]);
        await sleep(Math.min(downtimeMs, 1_000));
        await redis.start();
        await startGatewayProcess(0);
      }),
    );
    return reports;
  } finally {
    await Promise.all(pollers.map((poller) => poller.stop()));
    await Promise.all(gateways.map((gateway) => gateway?.stop('SIGTERM')));
    await Promise.all([redis.stop('SIGTERM'), mariadb.stop('SIGTERM')]);
    await rm(root, { recursive: true, force: true });
  }
}

function printTable(reports: PhaseReport[]): void {
  const columns: Array<[string, (report: PhaseReport) => string | number]> = [
    ['fault', (r) => r.fault],
    ['published', (r) => r.published],
    ['delivered', (r) => r.delivered],
    ['lost', (r) => r.lost],
    ['dup (after dedup)', (r) => r.duplicated],
    ['raw redeliveries', (r) => r.rawRedeliveries],
    ['publish retries dedup', (r) => r.publishRetriesDeduplicated],
    ['order violations', (r) => r.orderViolations],
    ['catch-up ms', (r) => r.catchUpMs],
  ];
  const rows = [columns.map(([name]) => name), ...reports.map((report) => columns.map(([, value]) => String(value(report))))];
  const widths = columns.map((_, index) => Math.max(...rows.map((row) => row[index]!.length)));
  const line = (row: string[]) => `| ${row.map((cell, index) => cell.padEnd(widths[index]!)).join(' | ')} |`;
  process.stdout.write(`${line(rows[0]!)}\n| ${widths.map((width) => '-'.repeat(width)).join(' | ')} |\n${rows.slice(1).map(line).join('\n')}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const short = process.argv.includes('--short');
  const started = Date.now();
  runFaults({ short }).then(
    (reports) => {
      printTable(reports);
      for (const report of reports.filter((r) => r.storeDownPublish)) {
        process.stdout.write(`publish while MariaDB was down (${report.fault}): ${JSON.stringify(report.storeDownPublish)}\n`);
      }
      process.stdout.write(`${JSON.stringify({ short, seconds: Math.round((Date.now() - started) / 1000), reports }, null, 2)}\n`);
      const failed = reports.some((r) => r.lost > 0 || r.duplicated > 0 || r.orderViolations > 0);
      process.exit(failed ? 1 : 0);
    },
    (error: unknown) => {
      process.stderr.write(`faults: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exit(1);
    },
  );
}
