import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as api from '../src/index.js';

const SRC = new URL('../src/', import.meta.url).pathname;
function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sourceFiles(path) : path.endsWith('.ts') ? [path] : [];
  });
}

/** The JSDoc block right above `export … name`, wherever in src/ it is declared. */
function docOf(name: string): string | undefined {
  const declaration = new RegExp(`/\\*\\*((?:(?!\\*/)[\\s\\S])*)\\*/\\s*export (?:async function|function|class|const) ${name}\\b`);
  for (const file of sourceFiles(SRC)) {
    const match = declaration.exec(readFileSync(file, 'utf8'));
    if (match) return match[1];
  }
  return undefined;
}

describe('the package entry point', () => {
  it('exports an explicit list, nothing by wildcard', () => {
    const index = readFileSync(join(SRC, 'index.ts'), 'utf8');
    expect(index).not.toMatch(/export \*/);
    expect(Object.keys(api).sort()).toEqual(
      [
        'BusConnectError',
        'ConfigError',
        'ENV_VARIABLES',
        'ERROR_STATUS',
        'GatewayError',
        'IdempotencyConflictError',
        'StoreUnavailableError',
        'createGateway',
        'createKnex',
        'createKnexStore',
        'createMemoryBus',
        'createRedisBus',
        'createRedisClusterBus',
        'createTokenIssuer',
        'createTokenVerifier',
        'isGatewayError',
        'loadConfig',
        'openKnexStore',
        'selectBus',
        'selectStore',
        'startGateway',
      ].sort(),
    );
  });

  it.each([
    'createGateway',
    'startGateway',
    'selectStore',
    'selectBus',
    'createKnex',
    'createKnexStore',
    'openKnexStore',
    'createMemoryBus',
    'createRedisBus',
    'createRedisClusterBus',
    'createTokenIssuer',
    'createTokenVerifier',
    'loadConfig',
    'ERROR_STATUS',
    'GatewayError',
  ])('documents %s with an @example', (name) => {
    expect(docOf(name), name).toContain('@example');
  });
});
