import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface NchanServer {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

const SCRIPT = fileURLToPath(new URL('../../scripts/nchan.sh', import.meta.url));

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * Nginx + Nchan with its own prefix, configuration and loopback port: `/sub/<user>` is a
 * long-poll subscriber, `/pub/<user>` the publisher. One process (`master_process off`) so its
 * CPU and RSS are one pid's, as for the Node peers. Throws with the installer's or nginx's error
 * when Nchan cannot run here.
 */
export async function startNchan(options: { maxConnections?: number } = {}): Promise<NchanServer> {
  const install = spawnSync('bash', [SCRIPT], { encoding: 'utf8' });
  if (install.status !== 0) throw new Error(`scripts/nchan.sh failed: ${install.stderr.trim() || install.stdout.trim()}`);
  const modulePath = install.stdout.trim().split('\n').pop()!;
  const port = await freePort();
  const prefix = mkdtempSync(join(tmpdir(), 'lpg-nchan-'));
  mkdirSync(join(prefix, 'logs'));
  const connections = options.maxConnections ?? 19_990;
  const conf = `load_module ${modulePath};
master_process off;
daemon off;
worker_processes 1;
worker_rlimit_nofile ${connections + 10};
pid ${prefix}/nginx.pid;
error_log ${prefix}/logs/error.log warn;
events { worker_connections ${connections}; multi_accept on; }
http {
  access_log off;
  client_body_temp_path ${prefix}/body;
  proxy_temp_path ${prefix}/proxy;
  fastcgi_temp_path ${prefix}/fastcgi;
  uwsgi_temp_path ${prefix}/uwsgi;
  scgi_temp_path ${prefix}/scgi;
  keepalive_timeout 5s;
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location = /healthz { default_type application/json; return 200 '{"status":"ok"}'; }
    location ~ ^/sub/([A-Za-z0-9._:@-]+)$ {
      nchan_subscriber longpoll;
      nchan_channel_id $1;
      nchan_subscriber_timeout 120s;
    }
    location ~ ^/pub/([A-Za-z0-9._:@-]+)$ {
      nchan_publisher;
      nchan_channel_id $1;
      nchan_message_buffer_length 200;
      nchan_message_timeout 10m;
    }
  }
}
`;
  writeFileSync(join(prefix, 'nginx.conf'), conf);
  const child: ChildProcess = spawn('nginx', ['-p', prefix, '-c', join(prefix, 'nginx.conf'), '-e', join(prefix, 'logs/error.log')], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const killChild = () => child.kill('SIGKILL');
  process.once('exit', killChild);
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`nginx exited with ${child.exitCode}: ${output.trim()}`);
    try {
      const response = await fetch(`http://127.0.0.1:${port}/healthz`);
      if (response.ok) break;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) throw new Error(`nginx did not answer on ${port}: ${output.trim()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    url: `http://127.0.0.1:${port}`,
    pid: child.pid!,
    async stop() {
      if (child.exitCode === null) child.kill('SIGQUIT');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
      process.off('exit', killChild);
      // nginx says why it refused or reset connections only in its error log.
      try {
        const errors = readFileSync(join(prefix, 'logs/error.log'), 'utf8').trim().split('\n').filter(Boolean);
        if (errors.length > 0) process.stderr.write(`nginx error log (last 5 of ${errors.length} lines):\n${errors.slice(-5).join('\n')}\n`);
      } catch {
        // No log: nothing to report.
      }
      rmSync(prefix, { recursive: true, force: true });
    },
  };
}
