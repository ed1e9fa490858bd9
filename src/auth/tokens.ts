import { SignJWT, jwtVerify, errors as joseErrors, type JWTPayload } from 'jose';
import { GatewayError } from '../errors.js';

/** What a token may do: `poll` reads and acks its own mailbox, `publish` writes to others'. */
export type TokenScope = 'poll' | 'publish';
export const TOKEN_SCOPES: readonly TokenScope[] = Object.freeze(['poll', 'publish']);

/** The verified claims of a token, as the HTTP layer uses them. */
export interface TokenClaims {
  /** `sub`: the user id — the mailbox the token polls and the sender of what it publishes. */
  readonly subject: string;
  /**
   * `pub`: the recipients the token may publish to (exact user ids, `prefix*`, `*` for anyone);
   * undefined when the token has no `pub` claim, which leaves the decision to PUBLISH_DEFAULT.
   */
  readonly pub: readonly string[] | undefined;
  /** `scope`: both scopes when the token has no `scope` claim (tokens minted before it existed). */
  readonly scope: readonly TokenScope[];
}

export interface TokenVerifier {
  /** Resolves the claims of a valid token; throws a 401 GatewayError otherwise (bad claims included). */
  verify(token: string): Promise<TokenClaims>;
}

export interface TokenIssueOptions {
  expiresInSeconds?: number;
  /** Recipients the token may publish to (`pub` claim); omitted = no claim, PUBLISH_DEFAULT decides. */
  pub?: readonly string[];
  /** Written as the space-separated `scope` claim; omitted = no claim, which grants both. */
  scope?: readonly TokenScope[];
}

export interface TokenIssuer {
  /** Signs an HS256 token whose `sub` is the user id. */
  issue(userId: string, options?: TokenIssueOptions): Promise<string>;
}

/** User ids are also Redis channel suffixes and DB keys: keep them short and printable. */
export const USER_ID_PATTERN = /^[A-Za-z0-9._:@-]{1,128}$/;

/** One entry of a `pub` claim: a user id, or a user id prefix followed by `*` (`*` alone: anyone). */
export const RECIPIENT_PATTERN = /^(?:[A-Za-z0-9._:@-]{1,128}|[A-Za-z0-9._:@-]{0,127}\*)$/;

/**
 * A `pub` claim travels in every request's Authorization header (Node refuses headers over 16 KB),
 * so a longer list is a mistake, not a use case: give such a sender a prefix or `*` instead.
 */
export const MAX_PUB_ENTRIES = 256;

const ALGORITHM = 'HS256';
const BOTH_SCOPES: readonly TokenScope[] = TOKEN_SCOPES;

function secretKey(secret: string): Uint8Array {
  return new TextEncoder().encode(secret);
}

function invalidClaim(message: string): GatewayError {
  return new GatewayError('invalid_token', message);
}

function isScope(value: string): value is TokenScope {
  return (TOKEN_SCOPES as readonly string[]).includes(value);
}

/**
 * The claims a route relies on, checked once per token. A malformed `pub` or `scope` makes the
 * whole token invalid (401) rather than quietly meaning "none" or "all": either guess would hand
 * some sender a permission its issuer did not write down.
 */
function claimsOf(payload: JWTPayload): TokenClaims {
  const subject = payload.sub;
  if (typeof subject !== 'string' || !USER_ID_PATTERN.test(subject)) {
    throw invalidClaim('The access token has no usable `sub` (user id).');
  }
  let pub: readonly string[] | undefined;
  if (payload.pub !== undefined) {
    const raw = payload.pub;
    if (!Array.isArray(raw) || raw.length > MAX_PUB_ENTRIES || !raw.every((entry) => typeof entry === 'string' && RECIPIENT_PATTERN.test(entry))) {
      throw invalidClaim(`The access token's \`pub\` claim must be an array of at most ${MAX_PUB_ENTRIES} user ids or \`prefix*\` patterns.`);
    }
    pub = Object.freeze([...(raw as string[])]);
  }
  let scope = BOTH_SCOPES;
  if (payload.scope !== undefined) {
    const names = typeof payload.scope === 'string' ? payload.scope.split(' ') : [];
    if (names.length === 0 || !names.every(isScope)) {
      throw invalidClaim('The access token\'s `scope` claim must be a space-separated string of `poll` and/or `publish`.');
    }
    scope = Object.freeze([...new Set(names)]);
  }
  return Object.freeze({ subject, pub, scope });
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
      const claims = claimsOf(payload);
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
      const { expiresInSeconds, pub, scope } = issueOptions;
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
      const claims: JWTPayload = {};
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
