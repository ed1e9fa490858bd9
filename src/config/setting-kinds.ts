import { z } from 'zod';

// The kinds of setting the configuration is made of: how each reads its environment variable's
// text, which zod schema checks its value (from the environment and from createGateway alike),
// and how a refused value is explained, under the name it was given by.

/** How one setting is read from its environment variable's text, validated and explained. */
export interface Setting<Value> {
  env: string;
  schema: z.ZodType<Value>;
  /** Text → the value the schema checks (leniently: what cannot convert is passed on to fail there). */
  fromText(raw: string): unknown;
  /** An empty variable counts as unset. */
  emptyIsUnset: boolean;
  /** The problem, named, when the schema refuses `value`. */
  explain(name: string, value: unknown): string;
  fallback?: Value;
}

const shown = (value: unknown) => (typeof value === 'string' ? JSON.stringify(value) : String(value));

export function integer(env: string, min: number, max: number, fallback?: number): Setting<number> {
  return {
    env,
    schema: z.number().int().min(min).max(max),
    fromText: (raw) => (/^-?\d+$/.test(raw.trim()) ? Number(raw) : raw),
    emptyIsUnset: true,
    explain: (name, value) =>
      typeof value === 'number' && Number.isInteger(value) ? `${name} must be between ${min} and ${max}, got ${value}` : `${name} must be an integer, got ${shown(value)}`,
    ...(fallback === undefined ? {} : { fallback }),
  };
}

export function flag(env: string, fallback: boolean): Setting<boolean> {
  const texts = new Map([
    ['1', true],
    ['true', true],
    ['yes', true],
    ['0', false],
    ['false', false],
    ['no', false],
  ]);
  return {
    env,
    schema: z.boolean(),
    // Only an empty variable is unset: blanks are a typo worth refusing.
    fromText: (raw) => (raw === '' ? undefined : (texts.get(raw) ?? raw)),
    emptyIsUnset: false,
    explain: (name, value) => `${name} must be one of 1, 0, true, false, yes, no, got ${shown(value)}`,
    fallback,
  };
}

export function text(env: string, schema: z.ZodType<string>, message: (name: string) => string, fallback?: string): Setting<string> {
  return { env, schema, fromText: (raw) => raw, emptyIsUnset: false, explain: (name) => message(name), ...(fallback === undefined ? {} : { fallback }) };
}

export function url(env: string, protocols: string[]): Setting<string> {
  return {
    env,
    schema: z.string().refine((value) => URL.canParse(value) && protocols.includes(new URL(value).protocol)),
    fromText: (raw) => raw,
    emptyIsUnset: true,
    explain: (name, value) =>
      typeof value === 'string' && URL.canParse(value) ? `${name} must use ${protocols.join(' or ')}, got ${new URL(value).protocol}` : `${name} is not a valid URL`,
  };
}

export function oneOf<const Values extends readonly [string, ...string[]]>(env: string, values: Values, emptyIsUnset: boolean, fallback?: Values[number]): Setting<Values[number]> {
  return {
    env,
    schema: z.enum(values),
    fromText: (raw) => (emptyIsUnset ? raw.trim() : raw),
    emptyIsUnset,
    explain: (name, value) => `${name} must be one of ${values.join(', ')}, got ${shown(value)}`,
    ...(fallback === undefined ? {} : { fallback }),
  };
}

/**
 * `CORS_ORIGINS`: comma-separated exact origins (`scheme://host[:port]`) and/or `*`. An entry with a
 * path or trailing slash would never equal the Origin header browsers send, so it is refused here
 * instead of failing silently at request time.
 */
const isOrigin = (entry: string) => entry === '*' || (URL.canParse(entry) && ['http:', 'https:'].includes(new URL(entry).protocol) && new URL(entry).origin === entry);
export const corsOrigins: Setting<string[]> = {
  env: 'CORS_ORIGINS',
  schema: z.array(z.string().refine(isOrigin)),
  fromText: (raw) => raw.split(',').map((part) => part.trim()).filter((part) => part !== ''),
  emptyIsUnset: true,
  explain: (name, value) => {
    const bad = Array.isArray(value) ? value.find((entry) => typeof entry !== 'string' || !isOrigin(entry)) : value;
    return `${name}: ${shown(bad)} is not an origin like https://app.example.com (scheme://host[:port], no path or trailing slash) or *`;
  },
  fallback: [],
};

/** `host:port,host:port` (REDIS_CLUSTER_NODES); IPv6 hosts in brackets. Throws naming the bad entry. */
export function parseClusterNodes(raw: string): Array<{ host: string; port: number }> {
  const entries = raw.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '');
  if (entries.length === 0) throw new TypeError('expected at least one host:port');
  return entries.map((entry) => {
    const match = /^(\[[0-9a-fA-F:.]+\]|[^:\s[\]]+):(\d{1,5})$/.exec(entry);
    const port = match ? Number(match[2]) : NaN;
    if (!match || port < 1 || port > 65535) throw new TypeError(`expected host:port, got ${JSON.stringify(entry)}`);
    return { host: match[1]!.replace(/^\[(.*)\]$/, '$1'), port };
  });
}

export const clusterNodes: Setting<Array<{ host: string; port: number }>> = {
  env: 'REDIS_CLUSTER_NODES',
  schema: z.array(z.object({ host: z.string().min(1), port: z.number().int().min(1).max(65535) })).min(1),
  fromText: (raw) => {
    try {
      return parseClusterNodes(raw);
    } catch (error) {
      return (error as Error).message;
    }
  },
  emptyIsUnset: true,
  explain: (name, value) => `${name}: ${typeof value === 'string' ? value : 'expected a list of {host, port}'} (comma-separated host:port list)`,
};
