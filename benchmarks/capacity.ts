/**
 * Benchmark 1, capacity: concurrent held long polls on one process, stepped up to the open-files
 * limit, for the gateway and its peers in the same run. Per step: RSS per held poll
 * ((RSS at N − idle RSS) / N) and the latency of a /healthz probe while the polls are held (a
 * stand-in for event-loop lag that works for every peer, nginx included).
 *
 *   npm run build && eval "$(bash scripts/services.sh env)"
 *   npx tsx benchmarks/capacity.ts [--steps 1000,5000,10000,19900] [--peers bare,koa,nchan,gateway] [--smoke]
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { parseArgs } from 'node:util';
import { createTokenIssuer } from '../src/auth/tokens.js';
import { summarizeLatencies } from '../src/bench/stats.js';
import { fmt, parseKinds, PEER_NAMES, report, rssKiB, settledRssKiB, sleep, startPeer, type PeerKind } from './lib.js';

const { values } = parseArgs({
  options: {
    steps: { type: 'string', default: '1000,5000,10000,19900' },
    peers: { type: 'string', default: 'bare,koa,nchan,gateway' },
    smoke: { type: 'boolean', default: false },
  },
});
const steps = (values.smoke ? '20,50' : values.steps).split(',').map(Number);
if (steps.some((step, index) => !Number.isInteger(step) || step < 1 || step > 60_000 || (index > 0 && step <= steps[index - 1]!))) {
  throw new Error('--steps must be increasing positive integers ≤ 60000');
}
/** Smoke runs only check that the script works: short pauses, figures meaningless. */
const pause = (ms: number) => sleep(values.smoke ? ms / 10 : ms);
const kinds = parseKinds(values.peers, Object.keys(PEER_NAMES)) as PeerKind[];
const secret = randomBytes(32).toString('hex');
const issuer = createTokenIssuer({ secret });
const maxPolls = steps.at(-1)!;
const tokens = await Promise.all(Array.from({ length: maxPolls }, (_, i) => issuer.issue(`cap-${i}`)));

interface StepResult {
  peer: string;
  polls: number;
  held: number;
  failed: number;
  failureReasons: Record<string, number>;
  rssMiB: number;
  kibPerPoll: number;
  probeP50Ms: number;
  probeMaxMs: number;
  stoppedBy: string | null;
}

async function probe(url: string, rounds: number): Promise<number[]> {
  const samples: number[] = [];
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  for (let round = 0; round < rounds; round += 1) {
    const started = performance.now();
    await new Promise<void>((resolve, reject) => {
      http.get(`${url}/healthz`, { agent }, (res) => {
        res.resume();
        res.on('end', () => resolve());
      }).on('error', reject);
    });
    samples.push(performance.now() - started);
    await sleep(20);
  }
  agent.destroy();
  return samples;
}

async function measurePeer(kind: PeerKind): Promise<StepResult[]> {
  let peer;
  try {
    peer = await startPeer(kind, secret);
  } catch (error) {
    process.stderr.write(`${PEER_NAMES[kind]} cannot run here: ${(error as Error).message}\n`);
    return [{ peer: `${PEER_NAMES[kind]} (cannot run: ${(error as Error).message.split('\n')[0]})`, polls: 0, held: 0, failed: 0, failureReasons: {}, rssMiB: 0, kibPerPoll: NaN, probeP50Ms: NaN, probeMaxMs: NaN, stoppedBy: 'error' }];
  }
  const name = 'backend' in peer && peer.backend ? `${peer.name} (${peer.backend})` : peer.name;
  const { hostname, port } = new URL(peer.url);
  await pause(1_000);
  // Warm up the code paths (a poll answered, a probe) so idle RSS includes compiled code, not just startup.
  await probe(peer.url, 5);
  const idle = await settledRssKiB(peer.pid, values.smoke ? 500 : 5_000);
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  const requests: http.ClientRequest[] = [];
  const failures = new Map<string, number>();
  let failed = 0;
  let answeredEarly = 0;
  const results: StepResult[] = [];
  const pathFor = (i: number) => (kind === 'nchan' ? `/sub/cap-${i}` : '/v1/poll?wait=120');
  let opened = 0;
  let stoppedBy: string | null = null;
  for (const step of steps) {
    const target = step;
    while (opened < target) {
      const i = opened++;
      const req = http.get({ host: hostname, port, path: pathFor(i), agent, headers: { Authorization: `Bearer ${tokens[i]}` } }, (res) => {
        // A held poll should not answer during the measurement: anything that does is a failure.
        answeredEarly += 1;
        const reason = `HTTP ${res.statusCode}`;
        failures.set(reason, (failures.get(reason) ?? 0) + 1);
        failed += 1;
        res.resume();
      });
      req.on('error', (error: NodeJS.ErrnoException) => {
        if (req.destroyed && error.message === 'socket hang up' && stoppedBy === 'done') return;
        failed += 1;
        const reason = error.code ?? error.message;
        failures.set(reason, (failures.get(reason) ?? 0) + 1);
      });
      requests.push(req);
      // Let the event loop breathe: thousands of connects at once overflow the accept backlog.
      if (i % 200 === 199) await sleep(20);
    }
    await pause(1_500);
    const rss = await settledRssKiB(peer.pid, values.smoke ? 500 : 15_000);
    const probes = await probe(peer.url, values.smoke ? 3 : 20);
    const summary = summarizeLatencies(probes);
    const held = target - failed;
    if ([...failures.keys()].some((reason) => reason === 'EMFILE' || reason === 'ENFILE' || reason === 'EADDRNOTAVAIL')) {
      stoppedBy = `the open-files / port limit (${[...failures.keys()].join(', ')}), not the server`;
    } else if (failed > 0) {
      stoppedBy = `the server (${[...failures.entries()].map(([k, v]) => `${k}×${v}`).join(', ')})`;
    }
    results.push({
      peer: name,
      polls: target,
      held,
      failed,
      failureReasons: Object.fromEntries(failures),
      rssMiB: rss / 1024,
      kibPerPoll: (rss - idle) / Math.max(1, held),
      probeP50Ms: summary.p50,
      probeMaxMs: summary.max,
      stoppedBy,
    });
    process.stderr.write(`${name}: ${target} polls, held ${held}, RSS ${(rss / 1024).toFixed(1)} MiB, ${((rss - idle) / Math.max(1, held)).toFixed(2)} KiB/poll\n`);
    if (stoppedBy) break;
  }
  stoppedBy = 'done';
  for (const req of requests) req.destroy();
  agent.destroy();
  void answeredEarly;
  await peer.stop();
  return results.map((result) => ({ ...result, idleRssMiB: idle / 1024 }));
}

const all: StepResult[] = [];
for (const kind of kinds) all.push(...(await measurePeer(kind)));
const koaAtTop = all.filter((row) => row.peer.startsWith(PEER_NAMES.koa)).at(-1);
const gatewayAtTop = all.filter((row) => row.peer.startsWith(PEER_NAMES.gateway)).at(-1);
const comparable = koaAtTop && gatewayAtTop && koaAtTop.polls === gatewayAtTop.polls;
report(
  'capacity',
  ['peer', 'polls', 'held', 'failed', 'RSS MiB', 'KiB/poll', 'probe p50 ms', 'probe max ms', 'stopped by'],
  all.map((row) => [row.peer, row.polls, row.held, row.failed, fmt(row.rssMiB), fmt(row.kibPerPoll, 2), fmt(row.probeP50Ms, 2), fmt(row.probeMaxMs, 2), row.stoppedBy ?? '']),
  {
    steps,
    results: all,
    target: comparable
      ? { gatewayKiBPerPoll: gatewayAtTop.kibPerPoll, koaKiBPerPoll: koaAtTop.kibPerPoll, ratio: gatewayAtTop.kibPerPoll / koaAtTop.kibPerPoll, met: gatewayAtTop.kibPerPoll <= koaAtTop.kibPerPoll }
      : null,
  },
  [
    comparable
      ? `RSS per held poll at ${gatewayAtTop.polls} polls: gateway ${fmt(gatewayAtTop.kibPerPoll, 2)} KiB ÷ Koa holder ${fmt(koaAtTop.kibPerPoll, 2)} KiB = ${fmt(gatewayAtTop.kibPerPoll / koaAtTop.kibPerPoll, 2)} (target ≤ 1: ${gatewayAtTop.kibPerPoll <= koaAtTop.kibPerPoll ? 'met' : 'NOT met'})`
      : 'RSS per held poll: gateway ÷ Koa needs both peers (--peers …,koa,gateway) to reach the same last step',
  ],
);
process.exit(0);
