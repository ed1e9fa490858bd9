import { describe, expect, it } from 'vitest';
import { checkClaims, type TokenClaims } from '../../src/auth/claims.js';
import { assertMayUseTopics, mayUseTopic } from '../../src/auth/topic-policy.js';

function claimsWith(topics: unknown): TokenClaims {
  const checked = checkClaims({ subject: 'alice', pub: undefined, scope: undefined, topics });
  if ('unusable' in checked) throw new Error(`unusable ${checked.unusable}`);
  return checked;
}

describe('the topics claim', () => {
  it('grants rights by exact name, by prefix and by *, the rights of every matching pattern adding up', () => {
    const claims = claimsWith({ 'room:42': ['publish'], 'room:*': ['read'], '*': ['presence'] });
    expect(mayUseTopic(claims, 'room:42', 'read')).toBe(true);
    expect(mayUseTopic(claims, 'room:42', 'publish')).toBe(true);
    expect(mayUseTopic(claims, 'room:43', 'publish')).toBe(false);
    expect(mayUseTopic(claims, 'announce', 'presence')).toBe(true);
    expect(mayUseTopic(claims, 'announce', 'read')).toBe(false);
  });

  it('grants nothing without a claim', () => {
    const claims = checkClaims({ subject: 'alice', pub: undefined, scope: undefined }) as TokenClaims;
    expect(claims.topics).toBeUndefined();
    expect(mayUseTopic(claims, 'announce', 'read')).toBe(false);
    expect(() => assertMayUseTopics(claims, ['announce'], 'read')).toThrow(expect.objectContaining({ code: 'forbidden_topic', status: 403 }));
  });

  it('keeps a grant for a topic named like an Object.prototype property', () => {
    const claims = claimsWith(JSON.parse('{"__proto__": ["read"], "constructor": ["publish"]}'));
    expect(mayUseTopic(claims, '__proto__', 'read')).toBe(true);
    expect(mayUseTopic(claims, 'constructor', 'publish')).toBe(true);
    expect(mayUseTopic(claims, 'toString', 'read')).toBe(false);
  });

  it('refuses the whole list at the first topic not granted, naming it and where it was', () => {
    const claims = claimsWith({ 'room:1': ['read'] });
    expect(() => assertMayUseTopics(claims, ['room:1', 'room:2'], 'publish', (index) => `messages.${index}.topic`)).toThrow(
      '`messages.0.topic`: this token may not publish to topic "room:1"',
    );
  });

  it.each([
    ['not an object', ['room:1']],
    ['a bad pattern', { 'room 1': ['read'] }],
    ['a star inside', { 'ro*m': ['read'] }],
    ['an unknown right', { 'room:1': ['write'] }],
    ['no rights', { 'room:1': [] }],
    ['too many patterns', Object.fromEntries(Array.from({ length: 257 }, (_, index) => [`t${index}`, ['read']]))],
  ])('makes claims with %s unusable', (_what, topics) => {
    expect(checkClaims({ subject: 'alice', pub: undefined, scope: undefined, topics })).toEqual({ unusable: 'topics' });
  });
});
