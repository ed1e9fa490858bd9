import { jwtVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import { createTokenVerifier } from '../../src/auth/tokens.js';
import { runCli } from '../support/process.js';

/** `longpoll-gateway token`: user tokens, device tokens and service tokens, with clear usage errors. */
const SECRET = 'cli-token-secret-0123456789abcdef0123456789';
const env = { GATEWAY_JWT_SECRET: SECRET, SQLITE_FILE: ':memory:' };

async function mint(args: string[]): Promise<Record<string, unknown>> {
  const result = await runCli(['token', ...args], env);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  const { payload } = await jwtVerify(result.stdout.trim(), new TextEncoder().encode(SECRET), { algorithms: ['HS256'] });
  return payload;
}

describe('longpoll-gateway token', () => {
  it('mints a user token with pub patterns, both scopes and a ttl', async () => {
    const payload = await mint(['alice', '--pub', 'agent:*', '--scope', 'poll,publish', '--ttl', '1h']);
    expect(payload).toMatchObject({ sub: 'alice', pub: ['agent:*'], scope: 'poll publish' });
    expect((payload.exp as number) - (payload.iat as number)).toBe(3600);
  });

  it('mints a service token (pub *, publish only)', async () => {
    const payload = await mint(['svc:billing', '--pub', '*', '--scope', 'publish']);
    expect(payload).toMatchObject({ sub: 'svc:billing', pub: ['*'], scope: 'publish' });
    expect(payload.exp).toBeUndefined();
  });

  it('takes --pub comma-separated and repeated, and --scope space-separated', async () => {
    const payload = await mint(['bob', '--pub', 'carol,team-*', '--pub', 'dave', '--scope', 'poll']);
    expect(payload).toMatchObject({ pub: ['carol', 'team-*', 'dave'], scope: 'poll' });
  });

  it('writes no pub or scope claim when not asked to (PUBLISH_DEFAULT and both scopes apply)', async () => {
    const payload = await mint(['alice']);
    expect(payload.pub).toBeUndefined();
    expect(payload.scope).toBeUndefined();
  });

  it('mints the topics claim from repeated --topic pattern=rights', async () => {
    const payload = await mint(['alice', '--topic', 'room:42=read,publish', '--topic', 'announce=read', '--topic', 'conv:*=read,publish,presence']);
    expect(payload.topics).toEqual({ 'room:42': ['read', 'publish'], announce: ['read'], 'conv:*': ['read', 'publish', 'presence'] });
  });

  it('merges the rights of a --topic pattern given twice, and takes * alone', async () => {
    const payload = await mint(['svc:ops', '--topic', '*=read', '--topic', '*=publish,read', '--scope', 'publish']);
    expect(payload).toMatchObject({ sub: 'svc:ops', topics: { '*': ['read', 'publish'] }, scope: 'publish' });
  });

  it('writes no topics claim without --topic (no topic at all)', async () => {
    const payload = await mint(['alice', '--pub', 'bob']);
    expect(payload.topics).toBeUndefined();
  });

  it('mints a token the gateway accepts for a topic poll', async () => {
    const result = await runCli(['token', 'alice', '--topic', 'room:*=read'], env);
    const claims = await createTokenVerifier({ secret: SECRET }).verify(result.stdout.trim());
    expect(claims.topics).toEqual({ 'room:*': ['read'] });
  });

  it.each([
    ['90', 90],
    ['90s', 90],
    ['15m', 900],
    ['2h', 7200],
    ['7d', 604_800],
  ])('reads --ttl %s as %i seconds', async (ttl, seconds) => {
    const payload = await mint(['alice', '--ttl', ttl]);
    expect((payload.exp as number) - (payload.iat as number)).toBe(seconds);
  });

  it('keeps --expires <seconds> working', async () => {
    const payload = await mint(['alice', '--expires', '60']);
    expect((payload.exp as number) - (payload.iat as number)).toBe(60);
  });

  it.each([
    [['alice', '--ttl', '1w'], '--ttl must be a positive duration'],
    [['alice', '--ttl', '0'], '--ttl must be a positive duration'],
    [['alice', '--ttl=-5m'], '--ttl must be a positive duration'],
    [['alice', '--ttl', '1.5h'], '--ttl must be a positive duration'],
    [['alice', '--ttl', '3651d'], 'at most 3650d'],
    [['alice', '--ttl', '1h', '--expires', '60'], 'either --ttl or --expires'],
    [['alice', '--expires', '1h'], '--expires must be a positive number of seconds'],
    [['alice', '--scope', 'admin'], '--scope must be one or more of poll, publish, presence (comma-separated); got "admin"'],
    [['alice', '--scope', ''], '--scope must be one or more of poll, publish, presence'],
    [['alice', '--pub', 'a*b'], '--pub takes user ids and prefix* patterns'],
    [['alice', '--pub', 'bob,'], '--pub takes user ids and prefix* patterns'],
    [['alice', '--pub', 'bob smith'], 'got "bob smith"'],
    [['alice', '--pub'], "Option '--pub <value>' argument missing"],
    [['alice', '--topic', 'room:42'], "--topic must be <pattern>=<rights>, like 'room:42=read,publish'; got \"room:42\""],
    [['alice', '--topic', 'room:42='], '--topic rights must be read, publish, presence, comma-separated; got "" in "room:42="'],
    [['alice', '--topic', 'room:42=read,write'], '--topic rights must be read, publish, presence, comma-separated; got "write"'],
    [['alice', '--topic', 'room:42=read,'], '--topic rights must be read, publish, presence'],
    [['alice', '--topic', 'bad name=read'], '--topic pattern must be a topic name'],
    [['alice', '--topic', 'room*42=read'], 'got "room*42" in "room*42=read"'],
    [['alice', '--topic', '=read'], '--topic pattern must be a topic name'],
    [['alice', '--topic', 'room:42=read', '--topic', 'x'], '--topic must be <pattern>=<rights>'],
    [['alice', '--topic'], "Option '--topic <value>' argument missing"],
    [['alice', '--audience', 'x'], "Unknown option '--audience'"],
    [['bad user'], 'user id must be 1-128 characters'],
    [['alice', 'bob'], 'token takes one user id'],
    [[], 'token needs a user id'],
  ])('refuses %j with a usage error (exit 2)', async (args, message) => {
    const result = await runCli(['token', ...args], env);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain(message);
    expect(result.stderr).not.toMatch(/\n\s+at /); // a message, not a stack trace
  });
});
