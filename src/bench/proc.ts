import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';

/**
 * CPU time and memory of local processes from /proc (Linux). Values in /proc/<pid>/stat are in
 * clock ticks; USER_HZ is 100 on every Linux architecture Node supports.
 */
const TICKS_PER_SECOND = 100;

export interface ProcSnapshot {
  cpuSeconds: number;
  rssKiB: number;
}

/** Fields of /proc/<pid>/stat after the command name (which may contain spaces and parentheses). */
function statFields(pid: number): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

export function readProcSnapshot(pid: number): ProcSnapshot & { startTicks: number } {
  const fields = statFields(pid);
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rss = /VmRSS:\s+(\d+)/.exec(status);
  // Field 22 (starttime): with the pid, it names a process even after its pid is reused.
  return { cpuSeconds: (utime + stime) / TICKS_PER_SECOND, rssKiB: rss ? Number(rss[1]) : 0, startTicks: Number(fields[19]) };
}

/** The process is gone (it exited while we looked): not a failure to read it. */
const exited = (error: unknown) => ['ENOENT', 'ESRCH'].includes((error as NodeJS.ErrnoException).code ?? '');

let childrenFiles: boolean | undefined;

/** Pids of a process's children from /proc/<pid>/task/<tid>/children, or by scanning every parent pid. */
function readChildren(pid: number): number[] {
  childrenFiles ??= existsSync(`/proc/${process.pid}/task/${process.pid}/children`);
  if (childrenFiles) {
    const children: number[] = [];
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      let text: string;
      try {
        text = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8');
      } catch {
        continue; // the thread ended while we looked
      }
      for (const child of text.split(' ')) if (child.trim() !== '') children.push(Number(child));
    }
    return children;
  }
  // Kernels without CONFIG_PROC_CHILDREN: every process's parent pid.
  const children: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (Number(statFields(Number(entry))[1]) === pid) children.push(Number(entry));
    } catch {
      // exited while we looked
    }
  }
  return children;
}

/** How the sampler reads processes (a test can make listing children fail). */
export interface ProcReader {
  snapshot(pid: number): ProcSnapshot & { startTicks: number };
  /** Direct children; throws when they cannot be listed. */
  children(pid: number): number[];
}

export const procReader: ProcReader = { snapshot: readProcSnapshot, children: readChildren };

/** Every descendant of `pid` (children, their children, …); throws when a level cannot be listed. */
export function descendantPids(pid: number, reader: ProcReader = procReader): number[] {
  const found: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const parent = queue.shift()!;
    let children: number[];
    try {
      children = reader.children(parent);
    } catch (error) {
      // A descendant that exited between listing and reading has no children left to miss.
      if (parent !== pid && exited(error)) continue;
      throw error;
    }
    for (const child of children) {
      if (child === pid || found.includes(child)) continue;
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}

/** Inodes of sockets listening on `port` (from /proc/net/tcp and tcp6). */
export function listeningSocketInodes(port: number, procNet: { tcp: string; tcp6: string } = readProcNet()): Set<string> {
  const inodes = new Set<string>();
  for (const table of [procNet.tcp, procNet.tcp6]) {
    for (const line of table.split('\n').slice(1)) {
      const columns = line.trim().split(/\s+/);
      if (columns.length < 10) continue;
      const localPort = parseInt(columns[1]!.split(':').pop()!, 16);
      // State 0A = LISTEN.
      if (localPort === port && columns[3] === '0A') inodes.add(columns[9]!);
    }
  }
  return inodes;
}

function readProcNet(): { tcp: string; tcp6: string } {
  const read = (path: string) => {
    try {
      return readFileSync(path, 'utf8');
    } catch {
      return '';
    }
  };
  return { tcp: read('/proc/net/tcp'), tcp6: read('/proc/net/tcp6') };
}

/**
 * The pid of the local process listening on `port`, or undefined (not found or not permitted).
 * When several hold the socket (a parent that shares it with its children), the topmost one: the
 * process whose tree is the server.
 */
export function findListeningPid(port: number): number | undefined {
  const inodes = listeningSocketInodes(port);
  if (inodes.size === 0) return undefined;
  const targets = new Set([...inodes].map((inode) => `socket:[${inode}]`));
  const holders: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${entry}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (targets.has(readlinkSync(`/proc/${entry}/fd/${fd}`))) {
          holders.push(Number(entry));
          break;
        }
      } catch {
        // The fd closed while we looked.
      }
    }
  }
  const parentOf = (pid: number) => {
    try {
      return Number(statFields(pid)[1]);
    } catch {
      return undefined;
    }
  };
  return holders.find((pid) => !holders.includes(parentOf(pid) ?? -1)) ?? holders[0];
}

interface Tracked {
  pid: number;
  /** CPU seconds at the start of sampling (0 for a process born during it). */
  base: number;
  last: number;
}

/**
 * Samples a process and all its descendants every `intervalMs` (a gateway under
 * `start --workers N` is a primary that hands out connections and N workers that do the work):
 * CPU seconds used since start by the whole tree, and the peak of the tree's summed RSS (shared
 * pages counted in each process). A process that exits keeps the CPU it was last seen with; one
 * that starts (a replaced worker) counts from 0.
 */
export class ProcSampler {
  private readonly tracked = new Map<string, Tracked>();
  private peakRssKiB = 0;
  private readonly startRssKiB: number;
  private readonly timer: NodeJS.Timeout;
  private rootUnreadable = false;
  /** The process (or part of its tree) could not be read: the figures cover less than the server. */
  error: string | undefined;

  constructor(
    readonly pid: number,
    intervalMs = 200,
    private readonly reader: ProcReader = procReader,
  ) {
    this.startRssKiB = this.read(true) ?? 0;
    this.peakRssKiB = this.startRssKiB;
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  /** Reads the tree once; returns its summed RSS, or undefined when the root is gone. */
  private read(initial: boolean): number | undefined {
    let root;
    try {
      root = this.reader.snapshot(this.pid);
    } catch (error) {
      this.rootUnreadable = true;
      this.error ??= `cannot read /proc/${this.pid}: ${(error as Error).message}`;
      return undefined;
    }
    const snapshots = [{ pid: this.pid, ...root }];
    let descendants: number[] = [];
    try {
      descendants = descendantPids(this.pid, this.reader);
    } catch (error) {
      this.error ??= `cannot list the child processes of ${this.pid} (${(error as Error).message}): CPU and RSS cover pid ${this.pid} only, not its workers`;
    }
    for (const pid of descendants) {
      try {
        snapshots.push({ pid, ...this.reader.snapshot(pid) });
      } catch (error) {
        if (!exited(error)) this.error ??= `cannot read /proc/${pid}, a child process of ${this.pid}: ${(error as Error).message}`;
      }
    }
    let rssKiB = 0;
    for (const snapshot of snapshots) {
      const key = `${snapshot.pid}:${snapshot.startTicks}`;
      const entry = this.tracked.get(key);
      if (entry) entry.last = snapshot.cpuSeconds;
      else this.tracked.set(key, { pid: snapshot.pid, base: initial ? snapshot.cpuSeconds : 0, last: snapshot.cpuSeconds });
      rssKiB += snapshot.rssKiB;
    }
    return rssKiB;
  }

  private sample(): void {
    const rssKiB = this.read(false);
    if (rssKiB !== undefined) this.peakRssKiB = Math.max(this.peakRssKiB, rssKiB);
  }

  private cpuSeconds(): number {
    let total = 0;
    for (const entry of this.tracked.values()) total += entry.last - entry.base;
    return total;
  }

  /** Samples now: CPU seconds of the tree since start (to time a window inside the run); undefined once the process is unreadable. */
  cpuSecondsNow(): number | undefined {
    this.sample();
    return this.rootUnreadable ? undefined : this.cpuSeconds();
  }

  stop(): { cpuSeconds: number; peakRssKiB: number; startRssKiB: number; pids: number[] } {
    clearInterval(this.timer);
    this.sample();
    return {
      cpuSeconds: this.cpuSeconds(),
      peakRssKiB: this.peakRssKiB,
      startRssKiB: this.startRssKiB,
      pids: [...new Set([...this.tracked.values()].map((entry) => entry.pid))],
    };
  }
}
