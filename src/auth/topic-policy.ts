import { GatewayError } from '../errors.js';
import type { TokenClaims, TopicGrants, TopicRight } from './claims.js';

/** A compiled `topics` claim: rights by exact name, by prefix (longest first is irrelevant: rights add up), and for `*`. */
interface CompiledGrants {
  exact: ReadonlyMap<string, ReadonlySet<TopicRight>>;
  prefixes: ReadonlyArray<readonly [prefix: string, rights: ReadonlySet<TopicRight>]>;
}

function compile(grants: TopicGrants): CompiledGrants {
  const exact = new Map<string, Set<TopicRight>>();
  const prefixes: Array<[string, Set<TopicRight>]> = [];
  for (const [pattern, rights] of Object.entries(grants)) {
    if (pattern.endsWith('*')) prefixes.push([pattern.slice(0, -1), new Set(rights)]);
    else exact.set(pattern, new Set(rights));
  }
  return { exact, prefixes };
}

// Keyed by the claim's object: the verifier hands out one claims object per token while it is
// cached, so a token's patterns are compiled once, not on every poll.
const compiled = new WeakMap<TopicGrants, CompiledGrants>();

/** Whether the token's `topics` claim grants `right` on `topic` (the rights of every matching pattern add up). */
export function mayUseTopic(claims: TokenClaims, topic: string, right: TopicRight): boolean {
  const grants = claims.topics;
  if (grants === undefined) return false;
  let matcher = compiled.get(grants);
  if (!matcher) compiled.set(grants, (matcher = compile(grants)));
  if (matcher.exact.get(topic)?.has(right)) return true;
  for (const [prefix, rights] of matcher.prefixes) if (rights.has(right) && topic.startsWith(prefix)) return true;
  return false;
}

/**
 * Throws 403 `forbidden_topic` naming the first topic the token may not `right`. Called with every
 * topic of a request before anything is read or stored: a poll or batch is refused whole.
 */
export function assertMayUseTopics(claims: TokenClaims, topics: readonly string[], right: TopicRight, where?: (index: number) => string): void {
  for (let index = 0; index < topics.length; index++) {
    const topic = topics[index]!;
    if (mayUseTopic(claims, topic, right)) continue;
    const prefix = where ? `\`${where(index)}\`: ` : '';
    const reason = claims.topics === undefined ? 'the token has no `topics` claim' : `its \`topics\` claim grants no \`${right}\` on it`;
    throw new GatewayError('forbidden_topic', `${prefix}this token may not ${right === 'publish' ? 'publish to' : right === 'presence' ? 'see the presence of' : right} topic ${JSON.stringify(topic)}: ${reason}.`);
  }
}
