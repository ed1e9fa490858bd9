import { spawn, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { descendantPids, ProcSampler, procReader, type ProcReader } from '../../src/bench/proc.js';
import { describeServer } from '../../src/bench/server-info.js';

/**
 * A gateway started by `npm start` on MariaDB + Redis is a primary that does little and workers
 * that do the work: the load tester must measure the whole tree. This builds such a tree: an idle
 * top process, an idle child, and a grandchild that burns CPU.
 */
interface Tree {
  top: ChildProcess;
  middlePid: number;
  burnerPid: number;
}

async function spawnTree(): Promise<Tree> {
  const burner = 'const end = Date.now() + 20000; while (Date.now() < end) {}';
  const middle = `const { spawn } = require('node:child_process'); const c = spawn(process.execPath, ['-e', ${JSON.stringify(burner)}], { stdio: 'ignore' }); console.log('pids ' + process.pid + ' ' + c.pid); setInterval(() => {}, 1000);`;
  const topScript = `const { spawn } = require('node:child_process'); spawn(process.execPath, ['-e', ${JSON.stringify(middle)}], { stdio: ['ignore', 'inherit', 'inherit'] }); setInterval(() => {}, 1000);`;
  const top = spawn(process.execPath, ['-e', topScript], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => reject(new Error(`the process tree did not start: ${output}`)), 10_000);
    top.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const match = /pids (\d+) (\d+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[0]);
      }
    });
  });
  const [, middlePid, burnerPid] = line.split(' ').map(Number) as [number, number, number];
  return { top, middlePid, burnerPid };
}

/** Only the processes this test started, by pid. */
function killTree(tree: Tree | undefined): void {
  if (!tree) return;
  for (const pid of [tree.burnerPid, tree.middlePid, tree.top.pid]) {
    try {
      if (pid) process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

describe('server CPU and RSS over the whole process tree', () => {
  let tree: Tree | undefined;
  beforeAll(async () => {
    tree = await spawnTree();
  });
  afterAll(() => killTree(tree));

  it('lists every descendant of a process, grandchildren included', () => {
    expect(descendantPids(tree!.top.pid!)).toEqual(expect.arrayContaining([tree!.middlePid, tree!.burnerPid]));
  });

  it('sums the CPU and RSS of the process and all its descendants (an idle parent with a busy grandchild is not 0)', async () => {
    const sampler = new ProcSampler(tree!.top.pid!, 100);
    await sleep(1_000);
    const stats = sampler.stop();
    expect(sampler.error).toBeUndefined();
    // The grandchild burns a core; the top process alone would show about 0.
    expect(stats.cpuSeconds).toBeGreaterThan(0.3);
    expect(stats.pids).toEqual(expect.arrayContaining([tree!.top.pid, tree!.middlePid, tree!.burnerPid]));
    // Three node processes, each well above 10 MiB.
    expect(stats.peakRssKiB).toBeGreaterThan(3 * 10 * 1024);
  });

  it('says loudly when the children cannot be listed, instead of reporting the parent alone as the server', async () => {
    const blind: ProcReader = {
      ...procReader,
      children() {
        throw new Error('EACCES: permission denied');
      },
    };
    const sampler = new ProcSampler(tree!.top.pid!, 100, blind);
    await sleep(200);
    sampler.stop();
    expect(sampler.error).toMatch(new RegExp(`cannot list the child processes of ${tree!.top.pid}.*EACCES.*only`));
  });

  it('names what it cannot know about a process that is not `longpoll-gateway start` as unknown', () => {
    expect(describeServer(tree!.top.pid!)).toMatchObject({ pid: tree!.top.pid, process: 'node', store: 'unknown', bus: 'unknown', workers: 'unknown' });
    expect(describeServer(tree!.top.pid!).source).toMatch(/not `longpoll-gateway start`/);
    expect(describeServer(process.pid)).toMatchObject({ store: 'unknown', bus: 'unknown', workers: 'unknown' });
    expect(describeServer(undefined)).toMatchObject({ pid: null, store: 'unknown', bus: 'unknown', workers: 'unknown' });
  });
});
