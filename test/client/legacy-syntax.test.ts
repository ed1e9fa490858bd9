import { parse } from 'acorn';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureLegacyBundle } from './support/legacy-bundle.js';

let bundle: string;
beforeAll(() => {
  bundle = ensureLegacyBundle();
});

describe('legacy bundle syntax', () => {
  it('parses as an ES5 script', () => {
    expect(() => parse(bundle, { ecmaVersion: 5, sourceType: 'script' })).not.toThrow();
  });

  it('the ES5 check really rejects newer syntax', () => {
    for (const snippet of ['let a = 1;', 'const f = () => 1;', 'var s = `x`;', 'class A {}', 'var { a } = b;', 'async function f() {}']) {
      expect(() => parse(snippet, { ecmaVersion: 5, sourceType: 'script' }), snippet).toThrow();
    }
  });

  it('names no ES2015+ or networking globals that an old browser lacks', () => {
    const code = bundle.replace(/\/\*[\s\S]*?\*\/|\/\/[^\n]*/g, '');
    for (const name of ['Promise', 'fetch', 'Map', 'Set', 'WeakMap', 'Symbol', 'WebSocket', 'EventSource', 'AbortController', 'Object.assign', 'Array.from']) {
      expect(code, name).not.toMatch(new RegExp(`(^|[^\\w.$])${name.replace('.', '\\.')}\\b`));
    }
  });

  it('exposes a UMD factory that sets the LongPoll global', () => {
    expect(bundle).toMatch(/root\.LongPoll = factory\(root\)/);
    expect(bundle).toMatch(/^\/\*! longpoll-gateway legacy client/);
  });
});
