import { describe, expect, it } from 'vitest';
import { assertTargetAllowed, BENCH_USAGE, BenchUsageError, isLoopbackAddress, parseBenchArgs } from '../../src/bench/options.js';

const SECRET = 's'.repeat(32);

describe('bench argument validation', () => {
  it('has defaults that compare four short-polling intervals with two long-poll waits', () => {
    const options = parseBenchArgs(['--secret', SECRET], {}, new Date('2026-01-02T03:04:05Z'));
    expect(options.modes.map((mode) => mode.label)).toEqual(['short 500ms', 'short 1s', 'short 2s', 'short 5s', 'long wait=5s', 'long wait=25s']);
    expect(options).toMatchObject({ clients: 100, rate: 50, durationS: 10, drainTimeoutS: 15, allowRemote: false, serverPid: 'auto', publishBatch: 1 });
    expect(options.url.href).toBe('http://127.0.0.1:8080/');
    expect(options.outPrefix).toBe('bench-results/bench-2026-01-02T03-04-05-000Z');
  });

  it('takes the secret from GATEWAY_JWT_SECRET, and leaves it to the run (development secret) when there is none', () => {
    expect(parseBenchArgs([], { GATEWAY_JWT_SECRET: SECRET }).secret).toBe(SECRET);
    expect(parseBenchArgs([], {})).toMatchObject({ secret: undefined, tokensFile: undefined });
    // `--secret "$GATEWAY_JWT_SECRET"` with the variable unset: say so instead of "Tokens are needed".
    expect(() => parseBenchArgs(['--secret', ''], {})).toThrow(/`--secret` is empty \(an unset variable\?\)/);
    expect(() => parseBenchArgs(['--secret', 'short'])).toThrow(/at least 32/);
    expect(() => parseBenchArgs(['--secret', SECRET, '--tokens', 'f'])).toThrow(/either/);
    expect(parseBenchArgs(['--tokens', 'file.txt'], { GATEWAY_JWT_SECRET: SECRET })).toMatchObject({ tokensFile: 'file.txt', secret: undefined });
  });

  it.each([
    [['--clients', '0'], /--clients.*positive integer/],
    [['--clients', '1.5'], /--clients.*positive integer/],
    [['--clients', '50001'], /at most 50000/],
    [['--rate=-1'], /--rate.*positive number/],
    [['--rate', 'fast'], /--rate.*positive number/],
    [['--duration', '0'], /--duration/],
    [['--rate', '20000', '--duration', '3600'], /messages per mode/],
    [['--short', 'none', '--long', 'none'], /Nothing to run/],
    [['--short', '500,500'], /twice/],
    [['--short', '500,x'], /--short/],
    [['--url', 'ftp://127.0.0.1/'], /http or https/],
    [['--url', 'not a url'], /--url/],
    [['--url', 'http://127.0.0.1:1/?a=1'], /no query/],
    [['--server-pid', 'mine'], /--server-pid/],
    [['--user-prefix', 'a b'], /--user-prefix/],
    [['--publish-batch', '0'], /--publish-batch.*positive integer/],
    [['--publish-batch', '1001'], /--publish-batch.*at most 1000/],
    [['--frobnicate'], /Unknown option/],
    [['--ramp=-1'], /Expected `--ramp` to be a number of seconds from 0 to 3600, got "-1"/],
    [['--ramp', 'soon'], /Expected `--ramp` to be a number of seconds from 0 to 3600, got "soon"/],
    [['--ramp', '3601'], /Expected `--ramp` to be a number of seconds from 0 to 3600, got "3601"/],
    [['--max-p99-ms', '0'], /Expected `--max-p99-ms` to be a positive number/],
    [['--max-p99-ms', '1s'], /Expected `--max-p99-ms` to be a positive number/],
    [['--max-errors=-1'], /Expected `--max-errors` to be a whole number from 0, got "-1"/],
    [['--max-errors', '0.5'], /Expected `--max-errors` to be a whole number from 0, got "0.5"/],
  ])('refuses %j', (argv, message) => {
    expect(() => parseBenchArgs([...argv, '--secret', SECRET])).toThrow(BenchUsageError);
    expect(() => parseBenchArgs([...argv, '--secret', SECRET])).toThrow(message);
  });

  it('adds a stream mode per transport asked for, after the polling modes', () => {
    expect(parseBenchArgs(['--secret', SECRET, '--short', 'none', '--long', '25', '--ws', '--sse']).modes).toEqual([
      { kind: 'long', waitS: 25, label: 'long wait=25s' },
      { kind: 'sse', label: 'sse' },
      { kind: 'ws', label: 'websocket' },
    ]);
    expect(parseBenchArgs(['--secret', SECRET, '--short', 'none', '--long', 'none', '--ws']).modes).toEqual([{ kind: 'ws', label: 'websocket' }]);
  });

  it('parses modes, pid and drain timeout', () => {
    const options = parseBenchArgs(['--secret', SECRET, '--short', '250,3000', '--long', 'none', '--server-pid', '1234', '--drain-timeout', '4']);
    expect(options.modes).toEqual([
      { kind: 'short', intervalMs: 250, label: 'short 250ms' },
      { kind: 'short', intervalMs: 3000, label: 'short 3s' },
    ]);
    expect(options.serverPid).toBe(1234);
    expect(options.drainTimeoutS).toBe(4);
    expect(parseBenchArgs(['--secret', SECRET, '--short', '7000', '--long', '5']).drainTimeoutS).toBe(17);
  });

  it('parses the ramp-up and the pass/fail thresholds (none by default)', () => {
    expect(parseBenchArgs(['--secret', SECRET])).toMatchObject({ rampS: 0, maxP99Ms: undefined, maxErrors: undefined });
    expect(parseBenchArgs(['--secret', SECRET, '--ramp', '2.5', '--max-p99-ms', '250.5', '--max-errors', '0'])).toMatchObject({ rampS: 2.5, maxP99Ms: 250.5, maxErrors: 0 });
    expect(parseBenchArgs(['--secret', SECRET, '--ramp', '0', '--max-errors', '12'])).toMatchObject({ rampS: 0, maxErrors: 12 });
  });

  it('documents every option in its usage', () => {
    for (const option of ['--ramp <s>', '--max-p99-ms <ms>', '--max-errors <n>']) expect(BENCH_USAGE).toContain(option);
  });

  it('takes the messages per publish request', () => {
    expect(parseBenchArgs(['--secret', SECRET, '--publish-batch', '100']).publishBatch).toBe(100);
  });
});

describe('loopback only by default', () => {
  it('recognizes loopback addresses', () => {
    for (const address of ['127.0.0.1', '127.3.2.1', '::1', '[::1]', '::ffff:127.0.0.1']) expect(isLoopbackAddress(address)).toBe(true);
    for (const address of ['10.0.0.1', '128.0.0.1', '0.0.0.0', '::', '::ffff:10.0.0.1', 'example.com']) expect(isLoopbackAddress(address)).toBe(false);
  });

  it('refuses a remote target unless --allow-remote, judging host names by every address they resolve to', async () => {
    const resolveTo = (addresses: string[]) => async () => addresses.map((address) => ({ address, family: 4 }));
    await expect(assertTargetAllowed(new URL('http://10.1.2.3:8080'), false)).rejects.toThrow(/--allow-remote/);
    await expect(assertTargetAllowed(new URL('http://10.1.2.3:8080'), true)).resolves.toBeUndefined();
    await expect(assertTargetAllowed(new URL('http://127.0.0.9:8080'), false)).resolves.toBeUndefined();
    await expect(assertTargetAllowed(new URL('http://[::1]:8080'), false)).resolves.toBeUndefined();
    await expect(assertTargetAllowed(new URL('http://gw.test:8080'), false, resolveTo(['127.0.0.1']))).resolves.toBeUndefined();
    await expect(assertTargetAllowed(new URL('http://gw.test:8080'), false, resolveTo(['127.0.0.1', '192.0.2.7']))).rejects.toThrow(/192\.0\.2\.7/);
    await expect(assertTargetAllowed(new URL('http://gw.test:8080'), false, resolveTo([]))).rejects.toThrow(/unresolved/);
  });
});
