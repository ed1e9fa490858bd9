/**
 * Profile for benchmarks 2 and 3: where the gateway's CPU goes under a long-polling load. Runs the
 * built gateway (one process, MariaDB + Redis when set) with `--cpu-prof`, drives it with the load
 * tester, stops it gracefully (the profile is written at exit) and prints self time by package
 * (node_modules/<name>, the gateway's own src/…, node: internals, GC) and the top functions.
 *
 *   npm run build && eval "$(bash scripts/services.sh env)"
 *   npx tsx benchmarks/cpu-profile.ts [--clients 1000] [--rate 300] [--duration 15] [--top 25] [--smoke]
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { runBench } from '../src/bench/command.js';
import { parseBenchArgs } from '../src/bench/options.js';
import { benchDatabase, fmt, realServers, report, spawnGatewayWithFlags } from './lib.js';

const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '1000' },
    rate: { type: 'string', default: '300' },
    duration: { type: 'string', default: '15' },
    top: { type: 'string', default: '25' },
    smoke: { type: 'boolean', default: false },
  },
});
const secret = randomBytes(32).toString('hex');
const dir = mkdtempSync(join(tmpdir(), 'lpg-cpuprof-'));
const database = realServers() ? await benchDatabase() : undefined;

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

function groupOf(url: string, functionName: string): string {
  if (functionName === '(garbage collector)') return 'GC';
  if (functionName === '(idle)' || functionName === '(program)') return functionName;
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`;
  const own = /\/dist\/(src\/[^/]+)/.exec(url);
  if (own) return own[1]!;
  return url ? 'other' : '(native)';
}

let bench;
try {
  const gateway = await spawnGatewayWithFlags(['--cpu-prof', `--cpu-prof-dir=${dir}`], {
    GATEWAY_JWT_SECRET: secret,
    LOG_LEVEL: 'error',
    GATEWAY_WORKERS: '1',
    PUBLISH_RATE_PER_USER: '0',
    PUBLISH_RATE_PER_IP: '0',
    ...(database ? database.env : { SQLITE_FILE: ':memory:' }),
  });
  try {
    const options = parseBenchArgs(
      [
        '--url', gateway.url,
        '--secret', secret,
        '--clients', values.smoke ? '20' : values.clients,
        '--rate', values.smoke ? '20' : values.rate,
        '--duration', values.smoke ? '1' : values.duration,
        '--short', 'none',
        '--long', '25',
        '--server-pid', String(gateway.pid),
      ],
      {},
    );
    options.progress = process.stderr.isTTY === true;
    bench = await runBench(options, { stdout: process.stdout, stderr: process.stderr });
  } finally {
    await gateway.stop();
  }
  const file = readdirSync(dir).find((name) => name.endsWith('.cpuprofile'));
  if (!file) throw new Error('the gateway wrote no .cpuprofile');
  const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] };
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfMs = new Map<number, number>();
  profile.samples.forEach((id, index) => selfMs.set(id, (selfMs.get(id) ?? 0) + (profile.timeDeltas[index] ?? 0) / 1000));
  const groups = new Map<string, number>();
  const functions = new Map<string, number>();
  let busyMs = 0;
  for (const [id, ms] of selfMs) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    const group = groupOf(url, functionName);
    if (group === '(idle)') continue;
    busyMs += ms;
    groups.set(group, (groups.get(group) ?? 0) + ms);
    const key = `${functionName || '(anonymous)'} ${url.replace(/^.*node_modules\//, '').replace(/^.*\/dist\//, '')}:${lineNumber + 1}`;
    functions.set(key, (functions.get(key) ?? 0) + ms);
  }
  const top = Number(values.top);
  const groupRows = [...groups].sort((a, b) => b[1] - a[1]).slice(0, top);
  const functionRows = [...functions].sort((a, b) => b[1] - a[1]).slice(0, top);
  const delivered = bench.modes[0]!.delivered;
  process.stdout.write(`\nTop functions by self time (ms):\n${functionRows.map(([name, ms]) => `  ${fmt(ms, 0).padStart(7)}  ${fmt((100 * ms) / busyMs, 1).padStart(5)}%  ${name}`).join('\n')}\n`);
  report(
    'cpu-profile',
    ['where (self time)', 'ms', '% of busy', 'ms per 1000 delivered'],
    groupRows.map(([group, ms]) => [group, fmt(ms, 0), fmt((100 * ms) / busyMs, 1), fmt((ms * 1000) / Math.max(1, delivered), 1)]),
    { delivered, busyMs, groups: Object.fromEntries(groupRows), functions: Object.fromEntries(functionRows), mode: bench.modes[0] },
  );
} finally {
  await database?.drop();
  if (process.env.KEEP_CPU_PROFILE) process.stderr.write(`profile kept in ${dir}\n`);
  else rmSync(dir, { recursive: true, force: true });
}
process.exit(0);
