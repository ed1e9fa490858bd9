import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { createTokenIssuer, createTokenVerifier } from '../../src/auth/tokens.js';

const secret = 'token-cache-secret-0123456789abcdef0123456789';

describe('verified-token cache', () => {
  it('stops accepting a remembered token once it expires', async () => {
    let now = Date.now();
    const verifier = createTokenVerifier({ secret, clockToleranceSeconds: 5, now: () => now });
    const token = await createTokenIssuer({ secret }).issue('alice', { expiresInSeconds: 60 });
    expect((await verifier.verify(token)).subject).toBe('alice');
    expect(verifier.cachedTokens).toBe(1);
    now += 30_000;
    expect((await verifier.verify(token)).subject).toBe('alice');
    now += 40_000; // 70 s after issue: past exp + tolerance
    await expect(verifier.verify(token)).rejects.toMatchObject({ code: 'token_expired', status: 401 });
    expect(verifier.cachedTokens).toBe(0);
  });

  it('never accepts a token that differs from a remembered one, even by one character', async () => {
    const verifier = createTokenVerifier({ secret });
    const token = await createTokenIssuer({ secret }).issue('alice');
    await verifier.verify(token);
    // Not the last character: its low bits are padding, so A and B there decode to the same signature.
    const at = token.length - 10;
    const tampered = `${token.slice(0, at)}${token[at] === 'A' ? 'B' : 'A'}${token.slice(at + 1)}`;
    await expect(verifier.verify(tampered)).rejects.toMatchObject({ code: 'invalid_token' });
    const forged = await createTokenIssuer({ secret: `${secret}-other` }).issue('alice');
    await expect(verifier.verify(forged)).rejects.toMatchObject({ code: 'invalid_token' });
    expect(verifier.cachedTokens).toBe(1);
  });

  it('stays within its size, dropping the oldest', async () => {
    const verifier = createTokenVerifier({ secret, cacheSize: 2 });
    const issuer = createTokenIssuer({ secret });
    const tokens = await Promise.all(['a', 'b', 'c'].map((user) => issuer.issue(user)));
    for (const token of tokens) await verifier.verify(token);
    expect(verifier.cachedTokens).toBe(2);
    // Still verified (the long way) after it was dropped.
    expect((await verifier.verify(tokens[0]!)).subject).toBe('a');
  });

  it('remembers the parsed claims, not just the subject: the same object until the token expires', async () => {
    const verifier = createTokenVerifier({ secret });
    const token = await createTokenIssuer({ secret }).issue('svc:billing', { pub: ['*', 'agent:*'], scope: ['publish'] });
    const first = await verifier.verify(token);
    expect(first).toEqual({ subject: 'svc:billing', pub: ['*', 'agent:*'], scope: ['publish'] });
    expect(await verifier.verify(token)).toBe(first);
    expect(Object.isFrozen(first) && Object.isFrozen(first.pub) && Object.isFrozen(first.scope)).toBe(true);
  });

  it('gives a token without `pub` or `scope` claims no recipient list and both scopes', async () => {
    const verifier = createTokenVerifier({ secret });
    expect(await verifier.verify(await createTokenIssuer({ secret }).issue('alice'))).toEqual({ subject: 'alice', pub: undefined, scope: ['poll', 'publish'] });
  });

  it('never caches a token whose claims are malformed', async () => {
    const verifier = createTokenVerifier({ secret });
    const bad = await new SignJWT({ pub: 'bob' }).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').sign(new TextEncoder().encode(secret));
    await expect(verifier.verify(bad)).rejects.toMatchObject({ code: 'invalid_token', status: 401 });
    await expect(verifier.verify(bad)).rejects.toMatchObject({ code: 'invalid_token', status: 401 });
    expect(verifier.cachedTokens).toBe(0);
  });

  it('can be turned off', async () => {
    const verifier = createTokenVerifier({ secret, cacheSize: 0 });
    await verifier.verify(await createTokenIssuer({ secret }).issue('a'));
    expect(verifier.cachedTokens).toBe(0);
    expect(() => createTokenVerifier({ secret, cacheSize: -1 })).toThrow(/cacheSize/);
  });
});
