import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../src/logger.js';

function capture(): { stream: Writable; lines: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  return { stream, lines: () => chunks.join('') };
}

describe('the logger', () => {
  it('never writes the Redis password that an AUTH reply error carries', () => {
    const { stream, lines } = capture();
    const logger = createLogger({ logLevel: 'warn' }, stream);
    // What ioredis hands the bus's onError when Redis refuses the login.
    const refused = Object.assign(new Error('WRONGPASS invalid username-password pair or user is disabled.'), {
      name: 'ReplyError',
      command: { name: 'auth', args: ['gateway', 's3cret-redis-password'] },
    });
    logger.warn({ err: refused }, 'redis bus error');
    logger.warn({ err: new Error('wrapped', { cause: refused }) }, 'redis bus error');
    expect(lines()).toContain('WRONGPASS');
    expect(lines()).not.toContain('s3cret-redis-password');
  });

  it('redacts tokens and bodies logged by mistake', () => {
    const { stream, lines } = capture();
    createLogger({ logLevel: 'info' }, stream).info({ token: 'eyJ.secret.token', body: 'private text', req: { headers: { authorization: 'Bearer eyJ.x.y' } } }, 'oops');
    expect(lines()).not.toMatch(/eyJ|private text/);
  });
});
