import { GatewayError } from '../errors.js';
import type { TokenClaims, TokenScope } from './claims.js';

/**
 * Who may publish to whom. A token's `scope` says whether it may publish at all; its `pub` claim
 * lists the recipients it may write to. A token without `pub` gets PUBLISH_DEFAULT:
 * `any` (every mailbox, the behaviour before `pub` existed), `none`, or `self` (its own mailbox).
 */
export type PublishDefault = 'any' | 'none' | 'self';
export const PUBLISH_DEFAULTS: readonly PublishDefault[] = Object.freeze(['any', 'none', 'self']);

/** Throws 403 `forbidden_scope` unless the token's `scope` includes `scope`. */
export function assertScope(claims: TokenClaims, scope: TokenScope): void {
  if (!claims.scope.includes(scope)) {
    throw new GatewayError('forbidden_scope', `This token's scope (${claims.scope.join(' ')}) does not include \`${scope}\`.`);
  }
}

export interface PublishPolicy {
  /**
   * Throws 403 `forbidden_scope` for a token without the `publish` scope (authentication refuses
   * those already; checked again so the policy holds wherever the routes are mounted), then 403
   * `forbidden_recipient` naming the first recipient the token may not write to.
   * Called with every recipient of a request before anything is stored: a batch is refused whole.
   * `where(index)` names a refused recipient in the message (e.g. `messages.3.to`).
   */
  assertMayPublishTo(claims: TokenClaims, recipients: readonly string[], where?: (index: number) => string): void;
  /** Whether the token's `pub` claim (or PUBLISH_DEFAULT) lets it write to `recipient`; the scope is not looked at. */
  mayPublishTo(claims: TokenClaims, recipient: string): boolean;
}

/** A compiled `pub` claim: exact ids in a set, prefixes in a list, `*` as a flag. */
interface RecipientMatcher {
  anyone: boolean;
  exact: ReadonlySet<string>;
  prefixes: readonly string[];
}

function compile(pub: readonly string[]): RecipientMatcher {
  const exact = new Set<string>();
  const prefixes: string[] = [];
  for (const entry of pub) {
    if (entry.endsWith('*')) prefixes.push(entry.slice(0, -1));
    else exact.add(entry);
  }
  return { anyone: prefixes.includes(''), exact, prefixes };
}

function matches(matcher: RecipientMatcher, recipient: string): boolean {
  if (matcher.anyone || matcher.exact.has(recipient)) return true;
  for (const prefix of matcher.prefixes) if (recipient.startsWith(prefix)) return true;
  return false;
}

/**
 * @example
 * const policy = createPublishPolicy({ publishDefault: config.publishDefault });
 * policy.assertMayPublishTo(ctx.state.claims, [input.to]);
 */
export function createPublishPolicy(options: { publishDefault: PublishDefault }): PublishPolicy {
  const { publishDefault } = options;
  if (!PUBLISH_DEFAULTS.includes(publishDefault)) {
    throw new TypeError(`Expected \`publishDefault\` to be one of ${PUBLISH_DEFAULTS.join(', ')}, got ${JSON.stringify(publishDefault)}`);
  }
  // Keyed by the claim's array: the verifier hands out the same claims object for a token as long as
  // it is cached, so a sender's patterns are compiled once, not on every publish.
  const compiled = new WeakMap<readonly string[], RecipientMatcher>();
  function matcherOf(pub: readonly string[]): RecipientMatcher {
    let matcher = compiled.get(pub);
    if (!matcher) {
      matcher = compile(pub);
      compiled.set(pub, matcher);
    }
    return matcher;
  }

  function allows(claims: TokenClaims, recipient: string): boolean {
    if (claims.pub !== undefined) return matches(matcherOf(claims.pub), recipient);
    if (publishDefault === 'any') return true;
    if (publishDefault === 'self') return recipient === claims.subject;
    return false;
  }

  function reason(claims: TokenClaims): string {
    if (claims.pub !== undefined) return 'its `pub` claim does not list it';
    return publishDefault === 'self'
      ? 'a token without a `pub` claim may only publish to its own mailbox here (PUBLISH_DEFAULT=self)'
      : 'a token without a `pub` claim may not publish here (PUBLISH_DEFAULT=none)';
  }

  return {
    mayPublishTo: allows,
    assertMayPublishTo(claims, recipients, where) {
      assertScope(claims, 'publish');
      for (let index = 0; index < recipients.length; index++) {
        const recipient = recipients[index]!;
        if (allows(claims, recipient)) continue;
        const prefix = where ? `\`${where(index)}\`: ` : '';
        throw new GatewayError('forbidden_recipient', `${prefix}this token may not publish to ${JSON.stringify(recipient)}: ${reason(claims)}.`);
      }
    },
  };
}
