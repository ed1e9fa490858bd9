import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/**
 * CPU time and memory of a local process from /proc (Linux). Values in /proc/<pid>/stat are in
 * clock ticks; USER_HZ is 100 on every Linux architecture Node supports.
 */
const TICKS_PER_SECOND = 100;

export interface ProcSnapshot {
  cpuSeconds: number;
  rssKiB: number;
}

export function readProcSnapshot(pid: number): ProcSnapshot {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may contain spaces and parentheses: split after its last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rss = /VmRSS:\s+(\d+)/.exec(status);
  return { cpuSeconds: (utime + stime) / TICKS_PER_SECOND, rssKiB: rss ? Number(rss[1]) : 0 };
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

/** The pid of the local process listening on `port`, or undefined (not found or not permitted). */
export function findListeningPid(port: number): number | undefined {
  const inodes = listeningSocketInodes(port);
  if (inodes.size === 0) return undefined;
  const targets = new Set([...inodes].map((inode) => `socket:[${inode}]`));
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
        if (targets.has(readlinkSync(`/proc/${entry}/fd/${fd}`))) return Number(entry);
      } catch {
        // The fd closed while we looked.
      }
    }
  }
  return undefined;
}

/** Samples a process every `intervalMs`: CPU seconds used since start and peak RSS seen. */
export class ProcSampler {
  private readonly start: ProcSnapshot;
  private peakRssKiB: number;
  private last: ProcSnapshot;
  private readonly timer: NodeJS.Timeout;
  error: string | undefined;

  constructor(
    readonly pid: number,
    intervalMs = 200,
  ) {
    this.start = readProcSnapshot(pid);
    this.last = this.start;
    this.peakRssKiB = this.start.rssKiB;
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  private sample(): void {
    try {
      this.last = readProcSnapshot(this.pid);
      this.peakRssKiB = Math.max(this.peakRssKiB, this.last.rssKiB);
    } catch (error) {
      this.error ??= `cannot read /proc/${this.pid}: ${(error as Error).message}`;
    }
  }

  /** Samples now: CPU seconds since start (to time a window inside the run); undefined if unreadable. */
  cpuSecondsNow(): number | undefined {
    this.sample();
    return this.error === undefined ? this.last.cpuSeconds - this.start.cpuSeconds : undefined;
  }

  stop(): { cpuSeconds: number; peakRssKiB: number; startRssKiB: number } {
    clearInterval(this.timer);
    this.sample();
    return { cpuSeconds: this.last.cpuSeconds - this.start.cpuSeconds, peakRssKiB: this.peakRssKiB, startRssKiB: this.start.rssKiB };
  }
}
