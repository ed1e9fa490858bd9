import { SignJWT, jwtVerify, errors as joseErrors, type JWTPayload } from 'jose';
import { GatewayError } from '../errors.js';
import { checkClaims, checkTopicGrants, isScope, MAX_PUB_ENTRIES, MAX_TOPIC_GRANTS, TOPIC_RIGHTS, type TopicGrants, RECIPIENT_PATTERN, TOKEN_SCOPES, USER_ID_PATTERN, type TokenClaims, type TokenScope } from './claims.js';

export { MAX_PUB_ENTRIES, RECIPIENT_PATTERN, TOKEN_SCOPES, USER_ID_PATTERN, type TokenClaims, type TokenScope, type TopicGrants, type TopicRight } from './claims.js';

export interface TokenVerifier {
  /** Resolves the claims of a valid token; throws a 401 GatewayError otherwise (bad claims included). */
  verify(token: string): Promise<TokenClaims>;
}

export interface TokenIssueOptions {
  expiresInSeconds?: number;
  /** Recipients the token may publish to (`pub` claim); omitted = no claim, PUBLISH_DEFAULT decides. */
  pub?: readonly string[];
  /** Written as the space-separated `scope` claim; omitted = no claim, which grants `poll` and `publish`. */
  scope?: readonly TokenScope[];
  /** The `topics` claim (pattern → rights); omitted = no claim, no topic. */
  topics?: TopicGrants;
}

export interface TokenIssuer {
  /** Signs an HS256 token whose `sub` is the user id. */
  issue(userId: string, options?: TokenIssueOptions): Promise<string>;
}

const ALGORITHM = 'HS256';

function secretKey(secret: string): Uint8Array {
  return new TextEncoder().encode(secret);
}

function invalidClaim(message: string): GatewayError {
  return new GatewayError('invalid_token', message);
}

/**
 * The claims a route relies on, checked once per token. A malformed `pub` or `scope` makes the
 * whole token invalid (401).
 */
function claimsOf(payload: JWTPayload, clockToleranceSeconds: number): TokenClaims {
  const checked = checkClaims({
    expiresAt: payload.exp === undefined ? undefined : (payload.exp + clockToleranceSeconds) * 1000,
    subject: payload.sub,
    pub: payload.pub,
    scope: payload.scope === undefined ? undefined : typeof payload.scope === 'string' ? payload.scope.split(' ') : [],
    topics: payload.topics,
  });
  if (!('unusable' in checked)) return checked;
  switch (checked.unusable) {
    case 'subject':
      throw invalidClaim('The access token has no usable `sub` (user id).');
    case 'pub':
      throw invalidClaim(`The access token's \`pub\` claim must be an array of at most ${MAX_PUB_ENTRIES} user ids or \`prefix*\` patterns.`);
    case 'scope':
      throw invalidClaim('The access token\'s `scope` claim must be a space-separated string of `poll`, `publish` and/or `presence`.');
    case 'topics':
      throw invalidClaim(
        `The access token's \`topics\` claim must map at most ${MAX_TOPIC_GRANTS} topic names or \`prefix*\` patterns to non-empty lists of ${TOPIC_RIGHTS.join(', ')}.`,
      );
  }
}

/**
 * @example
 * const verifier = createTokenVerifier({ secret: process.env.GATEWAY_JWT_SECRET! });
 * const { subject, pub, scope } = await verifier.verify(bearerToken);
 */
export function createTokenVerifier(options: {
  secret: string;
  clockToleranceSeconds?: number;
  /** Verified tokens remembered (default 50,000; 0 = verify every time). */
  cacheSize?: number;
  /** For tests of expiry; epoch milliseconds. */
  now?: () => number;
}): TokenVerifier & { readonly cachedTokens: number } {
  const clockTolerance = options.clockToleranceSeconds ?? 5;
  const cacheSize = options.cacheSize ?? 50_000;
  const now = options.now ?? Date.now;
  if (!(Number.isInteger(cacheSize) && cacheSize >= 0)) throw new TypeError('Expected `cacheSize` to be a non-negative integer');
  /**
   * A client sends the same token with every poll, and HMAC verification through WebCrypto was the
   * largest single item of a delivery's CPU (23% of the gateway's busy time, profiled at 500 msg/s).
   * A token that verified once stays valid until its `exp`, so it is remembered until then, keyed by
   * the whole token text, with its claims already parsed and checked (the same object every time,
   * so per-token work such as compiling `pub` patterns can be remembered against it). Oldest
   * entries go first when the cache is full (Map keeps insertion order).
   */
  const verified = new Map<string, { claims: TokenClaims; validUntilMs: number }>();
  function remember(token: string, claims: TokenClaims, expiresAtSeconds: number | undefined): void {
    if (cacheSize === 0) return;
    if (verified.size >= cacheSize) verified.delete(verified.keys().next().value!);
    verified.set(token, { claims, validUntilMs: expiresAtSeconds === undefined ? Number.POSITIVE_INFINITY : (expiresAtSeconds + clockTolerance) * 1000 });
  }
  // Imported once: given raw bytes, jose imports a WebCrypto key on every call, which cost about
  // three times the verification itself (measured: 141 µs vs 43 µs CPU per token) on a path that
  // every poll and publish takes.
  let key: Promise<CryptoKey> | undefined;
  const verificationKey = () =>
    (key ??= globalThis.crypto.subtle.importKey('raw', new TextEncoder().encode(options.secret) as Uint8Array<ArrayBuffer>, { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']));
  return {
    get cachedTokens() {
      return verified.size;
    },
    async verify(token) {
      const known = verified.get(token);
      if (known) {
        if (now() <= known.validUntilMs) return known.claims;
        verified.delete(token);
      }
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, await verificationKey(), { algorithms: [ALGORITHM], clockTolerance, currentDate: new Date(now()) }));
      } catch (error) {
        if (error instanceof joseErrors.JWTExpired) {
          throw new GatewayError('token_expired', 'The access token has expired.', { cause: error });
        }
        throw new GatewayError('invalid_token', 'The access token is not valid.', { cause: error });
      }
      const claims = claimsOf(payload, clockTolerance);
      remember(token, claims, payload.exp);
      return claims;
    },
  };
}

/**
 * @example
 * const issuer = createTokenIssuer({ secret });
 * const device = await issuer.issue('alice', { expiresInSeconds: 3600, scope: ['poll'] });
 * const billing = await issuer.issue('svc:billing', { pub: ['*'], scope: ['publish'] });
 */
export function createTokenIssuer(options: { secret: string }): TokenIssuer {
  const key = secretKey(options.secret);
  return {
    async issue(userId, issueOptions = {}) {
      if (!USER_ID_PATTERN.test(userId)) {
        throw new GatewayError('invalid_user_id', `User id must match ${USER_ID_PATTERN}.`);
      }
      const { expiresInSeconds, pub, scope, topics } = issueOptions;
      if (expiresInSeconds !== undefined && !(Number.isInteger(expiresInSeconds) && expiresInSeconds > 0)) {
        throw new TypeError('Expected `expiresInSeconds` to be a positive integer');
      }
      if (pub !== undefined) {
        const bad = pub.find((entry) => !RECIPIENT_PATTERN.test(entry));
        if (bad !== undefined) throw new TypeError(`Expected \`pub\` entries to be user ids or \`prefix*\` patterns, got ${JSON.stringify(bad)}`);
        if (pub.length > MAX_PUB_ENTRIES) throw new TypeError(`Expected \`pub\` to have at most ${MAX_PUB_ENTRIES} entries`);
      }
      if (scope !== undefined && (scope.length === 0 || !scope.every((name) => isScope(name)))) {
        throw new TypeError(`Expected \`scope\` to be a non-empty list of ${TOKEN_SCOPES.join(', ')}`);
      }
      if (topics !== undefined && checkTopicGrants(topics) === undefined) {
        throw new TypeError(`Expected \`topics\` to map at most ${MAX_TOPIC_GRANTS} topic names or \`prefix*\` patterns to non-empty lists of ${TOPIC_RIGHTS.join(', ')}`);
      }
      const claims: JWTPayload = {};
      if (topics !== undefined) claims.topics = { ...topics };
      if (pub !== undefined) claims.pub = [...pub];
      if (scope !== undefined) claims.scope = [...new Set(scope)].join(' ');
      const jwt = new SignJWT(claims).setProtectedHeader({ alg: ALGORITHM }).setSubject(userId).setIssuedAt();
      if (expiresInSeconds !== undefined) {
        jwt.setExpirationTime(Math.floor(Date.now() / 1000) + expiresInSeconds);
      }
      return jwt.sign(key);
    },
  };
}
