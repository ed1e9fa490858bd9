import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Real proxies for the compatibility tests: Debian's nginx and squid (installed by
 * scripts/proxies.sh), each started with its own config in a temporary prefix, on its own
 * loopback port, and stopped by its pid. Nothing touches system-wide instances.
 */

export const NGINX_BINARY = '/usr/sbin/nginx';
export const SQUID_BINARY = '/usr/sbin/squid';

/**
 * Local runs without the binaries skip loudly; CI=true makes a missing proxy a failure, like the
 * real database servers.
 */
export function proxyAvailability(binary: string, testFile: string): { run: boolean; missing: boolean } {
  const present = existsSync(binary);
  if (!present && process.env.CI !== 'true') {
    console.warn(`${testFile}: SKIPPED, ${binary} is not installed (run \`bash scripts/proxies.sh\`).`);
  }
  return { run: present || process.env.CI === 'true', missing: !present };
}

export interface RunningProxy {
  /** `http://127.0.0.1:<port>` */
  url: string;
  port: number;
  /** The proxy's own log text (nginx error log / squid cache log), for failure messages. */
  log(): string;
  stop(): Promise<void>;
}

async function freeLoopbackPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function acceptsConnections(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function stopProcess(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

/**
 * Starts `binary args` whose config listens on `port`, and waits until it accepts connections.
 * A port taken between picking and binding shows up as an early exit: retried with a new port.
 */
async function startOnFreePort(
  name: string,
  start: (port: number, dir: string) => { args: string[]; logFile: string },
  binary: string,
): Promise<RunningProxy> {
  for (let attempt = 1; ; attempt += 1) {
    const dir = mkdtempSync(join(tmpdir(), `lpg-${name}-`));
    // Both daemons drop root privileges for their workers (nobody / proxy): they must write here.
    chmodSync(dir, 0o777);
    const port = await freeLoopbackPort();
    const { args, logFile } = start(port, dir);
    const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const log = () => `${output}${existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''}`;
    const deadline = Date.now() + 20_000;
    let ready = false;
    while (Date.now() < deadline && child.exitCode === null) {
      if (await acceptsConnections(port)) {
        ready = true;
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    if (ready) {
      return {
        url: `http://127.0.0.1:${port}`,
        port,
        log,
        async stop() {
          await stopProcess(child, 'SIGTERM');
          rmSync(dir, { recursive: true, force: true });
        },
      };
    }
    await stopProcess(child, 'SIGKILL');
    const text = log();
    rmSync(dir, { recursive: true, force: true });
    if (attempt >= 3 || !/in use|bind/i.test(text)) throw new Error(`${name} did not start:\n${text}`);
  }
}

/**
 * nginx in the foreground with a private prefix. `serverBlock(port)` is the `server { … }` text;
 * temp paths live in the prefix so no system directory is needed.
 */
export async function startNginx(serverBlock: (port: number) => string): Promise<RunningProxy> {
  return startOnFreePort(
    'nginx',
    (port, dir) => {
      const conf = join(dir, 'nginx.conf');
      writeFileSync(
        conf,
        `worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
${serverBlock(port)}
}
`,
      );
      return { args: ['-e', 'stderr', '-p', `${dir}/`, '-c', conf], logFile: join(dir, 'error.log') };
    },
    NGINX_BINARY,
  );
}

/**
 * squid in the foreground (-N) as a forward proxy with an in-memory cache: no cache_dir, so no
 * `squid -z` step and nothing on disk but logs.
 */
export async function startSquid(): Promise<RunningProxy> {
  return startOnFreePort(
    'squid',
    (port, dir) => {
      const conf = join(dir, 'squid.conf');
      writeFileSync(
        conf,
        `http_port 127.0.0.1:${port}
visible_hostname lpg-test-squid
acl loopback src 127.0.0.0/8
http_access allow loopback
http_access deny all
cache allow all
# Aggressive, like the caches we have to survive: an answer without explicit freshness is kept
# for 5 minutes, so only the gateway's own no-store headers stand between a poll and the cache.
refresh_pattern . 5 50% 60
cache_mem 16 MB
maximum_object_size_in_memory 512 KB
pid_filename ${dir}/squid.pid
access_log stdio:${dir}/access.log
cache_log ${dir}/cache.log
cache_store_log none
coredump_dir ${dir}
pinger_enable off
shutdown_lifetime 0 seconds
dns_nameservers 127.0.0.1
`,
      );
      return { args: ['-N', '-f', conf], logFile: join(dir, 'cache.log') };
    },
    SQUID_BINARY,
  );
}

export interface ProxiedResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/**
 * A request through a forward proxy the way browsers send it: absolute URI in the request line,
 * no CONNECT tunnel (a tunnel would hide the exchange from the cache).
 */
export function requestViaForwardProxy(
  proxy: RunningProxy,
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<ProxiedResponse> {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const request = httpRequest(
      {
        host: '127.0.0.1',
        port: proxy.port,
        method: init.method ?? 'GET',
        path: target.href,
        headers: { Host: target.host, ...init.headers },
        agent: false,
      },
      (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (body += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }));
        response.on('error', reject);
      },
    );
    request.setTimeout(30_000, () => request.destroy(new Error(`no answer from ${proxy.url} for ${target.pathname}`)));
    request.on('error', reject);
    request.end(init.body);
  });
}
