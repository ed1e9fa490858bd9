import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { developmentSecret } from '../../src/bench/command.js';
import { BenchUsageError } from '../../src/bench/options.js';

describe('bench without --secret, GATEWAY_JWT_SECRET or --tokens', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lpg-bench-secret-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('uses the development secret next to SQLITE_FILE, as `token` does', () => {
    const secretFile = join(dir, 'dev-jwt-secret');
    writeFileSync(secretFile, `${'d'.repeat(64)}\n`);
    expect(developmentSecret({ SQLITE_FILE: join(dir, 'gateway.sqlite') })).toEqual({ secret: 'd'.repeat(64), secretFile });
  });

  it('never makes one: a secret the gateway does not have would turn every request into a 401', () => {
    const other = join(dir, 'fresh');
    expect(() => developmentSecret({ SQLITE_FILE: join(other, 'gateway.sqlite') })).toThrow(
      new RegExp(`no development secret at ${join(other, 'dev-jwt-secret').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} yet: start the gateway`),
    );
    expect(existsSync(join(other, 'dev-jwt-secret'))).toBe(false);
  });

  it.each([
    [{ SQLITE_FILE: ':memory:' }, /Tokens are needed.*SQLITE_FILE=:memory: keeps no development secret/],
    [{ NODE_ENV: 'production', SQLITE_FILE: join(tmpdir(), 'x.sqlite') }, /Tokens are needed.*NODE_ENV=production/],
    [{ SQLITE_FILE: join(tmpdir(), 'x.sqlite'), POLL_WAIT_MAX_S: 'soon' }, /Tokens are needed[\s\S]*POLL_WAIT_MAX_S must be an integer/],
  ])('says tokens are needed when there is no development secret to use (%j)', (env, message) => {
    expect(() => developmentSecret(env)).toThrow(BenchUsageError);
    expect(() => developmentSecret(env)).toThrow(message);
  });
});
