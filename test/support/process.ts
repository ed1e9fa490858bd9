import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const BIN = `${ROOT}bin/longpoll-gateway.js`;

export interface GatewayProcess {
  url: string;
  child: ChildProcess;
  output(): string;
  /** Sends a signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export function assertBuilt(): void {
  if (!existsSync(`${ROOT}dist/src/cli.js`)) {
    throw new Error('dist/ is missing: run `npm run build` (npm test does this first).');
  }
}

export interface SpawnOptions {
  /** Extra arguments after `start` (e.g. `--workers 2`). */
  args?: string[];
  timeoutMs?: number;
  /** The banner that says the gateway is ready; its first group is the URL. */
  listening?: RegExp;
}

const LISTENING = /listening on (http:\/\/[\d.:]+)/;

/**
 * Runs `node <nodeArgs>` with exactly `env` (plus PATH) and resolves once its output matches
 * `listening` (first group: the URL). The child is SIGKILLed if this process exits first.
 * Shared by the gateway CLI, the benchmark peers and profiling runs.
 */
export async function spawnNodeUntilListening(
  nodeArgs: string[],
  env: Record<string, string>,
  options: { listening?: RegExp; timeoutMs?: number; label?: string } = {},
): Promise<GatewayProcess> {
  const label = options.label ?? 'process';
  const timeoutMs = options.timeoutMs ?? 20_000;
  const listening = options.listening ?? LISTENING;
  const child = spawn(process.execPath, nodeArgs, { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  // Never leave a child behind when the test or benchmark process dies first.
  const killChild = () => child.kill('SIGKILL');
  process.once('exit', killChild);
  child.once('exit', () => process.off('exit', killChild));
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${label} did not start in ${timeoutMs} ms:\n${output}`)), timeoutMs);
    const check = () => {
      const match = listening.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    };
    child.stdout!.on('data', check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${label} exited with ${code} before listening:\n${output}`));
    });
  });
  return {
    url,
    child,
    output: () => output,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** Runs the real CLI (`longpoll-gateway start`) as a child process and waits for its URL. */
export async function spawnGateway(env: Record<string, string>, options: SpawnOptions & { nodeFlags?: string[] } = {}): Promise<GatewayProcess> {
  assertBuilt();
  return spawnNodeUntilListening(
    [...(options.nodeFlags ?? []), BIN, 'start', ...(options.args ?? [])],
    // One process unless a test asks for workers: `start` otherwise forks one per core on MySQL + Redis.
    { PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn', GATEWAY_WORKERS: '1', ...env },
    { listening: options.listening, timeoutMs: options.timeoutMs, label: 'gateway' },
  );
}

/** Pids of a process's direct children (the workers of `start --workers N`); [] when none. */
export function childPids(pid: number): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
  } catch {
    return []; // pgrep exits 1 when there are none
  }
}

export function runCli(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  assertBuilt();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH ?? '', ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}
