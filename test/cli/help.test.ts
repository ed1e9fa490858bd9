import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BENCH_USAGE } from '../../src/bench/options.js';
import { runCli } from '../support/process.js';

/**
 * `longpoll-gateway <command> --help`, `-h` and `help [command]`: each prints that command's help
 * (usage, options, an example) on stdout, exits 0 and does nothing else — no migration, no server,
 * no token, no development secret written.
 */
describe('longpoll-gateway help', () => {
  let dataDir: string;
  let env: Record<string, string>;

  beforeAll(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'lpg-cli-help-'));
    // The database (and the dev secret next to it) would land in `db/`: nothing may create it.
    // GATEWAY_WORKERS=1 and PORT=0: were `start` to run anyway, it would listen rather than fork.
    env = { SQLITE_FILE: join(dataDir, 'db', 'gateway.sqlite'), PORT: '0', HOST: '127.0.0.1', GATEWAY_WORKERS: '1' };
  });
  afterAll(() => {
    rmSync(dataDir, { recursive: true, force: true });
  });

  /** Runs the CLI and fails fast (instead of hanging until the test timeout) when it keeps running, e.g. as a server. */
  async function run(args: string[]) {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        runCli(args, env),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`\`${args.join(' ')}\` was still running after 10 s (a server?)`)), 10_000);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  function expectNothingCreated() {
    expect(existsSync(join(dataDir, 'db'))).toBe(false);
    expect(readdirSync(dataDir)).toEqual([]);
  }

  const COMMAND_USAGE: Record<string, RegExp> = {
    start: /^longpoll-gateway start \[--workers N\|auto\]\n/,
    token: /^longpoll-gateway token <user> \[--pub <recipients>\] \[--scope poll,publish\] \[--topic <pattern>=<rights>\] \[--ttl <duration>\]\n/,
    migrate: /^longpoll-gateway migrate\n/,
  };

  describe.each(Object.keys(COMMAND_USAGE))('%s', (command) => {
    it.each([['--help'], ['-h']])(`${command} %s prints its help (usage, options, example), exits 0 and does nothing else`, async (flag) => {
      const result = await run([command, flag]);
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(COMMAND_USAGE[command]!);
      expect(result.stdout).toContain('-h, --help');
      expect(result.stdout).toMatch(/\nExample:\n {2}\S/);
      expect(result.stdout).not.toContain('listening on');
      expect(result.stdout).not.toContain('schema is up to date');
      expect(result.stdout).not.toMatch(/eyJ/); // no JWT
      expectNothingCreated();
    });

    it(`help ${command} prints the same help as ${command} --help`, async () => {
      const viaHelp = await run(['help', command]);
      const viaFlag = await run([command, '--help']);
      expect(viaHelp.code).toBe(0);
      expect(viaHelp.stderr).toBe('');
      expect(viaHelp.stdout).toBe(viaFlag.stdout);
      expectNothingCreated();
    });
  });

  it('token <user> --help prints the help instead of a token', async () => {
    const result = await run(['token', 'alice', '--ttl', '1h', '--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(COMMAND_USAGE.token!);
    expect(result.stdout).not.toMatch(/eyJ/);
    expectNothingCreated();
  });

  it('migrate --help against an unreachable MYSQL_URL still only prints the help', async () => {
    const result = await runCli(['migrate', '--help'], { ...env, MYSQL_URL: 'mysql://u:p@127.0.0.1:9/x' });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(COMMAND_USAGE.migrate!);
  });

  it('bench --help and -h keep printing the bench usage', async () => {
    for (const flag of ['--help', '-h']) {
      const result = await run(['bench', flag]);
      expect(result.code).toBe(0);
      expect(result.stdout).toBe(BENCH_USAGE);
    }
  });

  it('help bench prints the bench usage', async () => {
    const result = await run(['help', 'bench']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(BENCH_USAGE);
  });

  it.each([[['help']], [['--help']], [['-h']], [[]]])('%j prints the overall usage naming every command', async (args) => {
    const result = await run(args);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^longpoll-gateway <command>/);
    for (const command of ['start', 'token <user>', 'migrate', 'bench', 'help [command]']) expect(result.stdout).toContain(`\n  ${command}`);
    expect(result.stdout).toContain('longpoll-gateway help <command>');
    expectNothingCreated();
  });

  it('help --help and help help print the help command itself', async () => {
    for (const args of [['help', '--help'], ['help', 'help']]) {
      const result = await run(args);
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(/^longpoll-gateway help \[command\]\n/);
    }
  });

  it('help nosuch is a usage error (exit 2) naming the known commands', async () => {
    const result = await run(['help', 'nosuch']);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('unknown command "nosuch"');
    for (const command of ['start', 'token', 'migrate', 'bench', 'help']) expect(result.stderr).toContain(command);
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });

  it('help with two commands is a usage error (exit 2)', async () => {
    const result = await run(['help', 'start', 'token']);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('help takes one command');
  });
});
