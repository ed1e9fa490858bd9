import type Koa from 'koa';
import getRawBody from 'raw-body';
import { GatewayError } from '../errors.js';

/**
 * text/plain is accepted because old browsers' cross-origin requests (XDomainRequest, "simple"
 * CORS requests) cannot send application/json without a preflight.
 */
const ACCEPTED_TYPES = ['application/json', 'text/plain'];
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Reads and parses a JSON request body with a byte limit. The limit is enforced while streaming
 * (and up front from Content-Length), so an oversize body is never buffered whole.
 */
export async function readJsonBody(ctx: Koa.Context, limitBytes: number): Promise<unknown> {
  const mediaType = (ctx.get('Content-Type').split(';')[0] ?? '').trim().toLowerCase();
  // Where cookies may authenticate, only a body a cross-site form cannot send (it needs a preflight).
  if (ctx.state.jsonBodiesOnly === true ? mediaType !== 'application/json' : !ACCEPTED_TYPES.includes(mediaType)) {
    throw new GatewayError(
      'unsupported_media_type',
      ctx.state.jsonBodiesOnly === true ? 'Send the body as application/json.' : 'Send the body as application/json (or text/plain containing JSON).',
    );
  }
  let raw: Buffer;
  try {
    raw = await getRawBody(ctx.req, { limit: limitBytes, length: ctx.get('Content-Length') || undefined });
  } catch (error) {
    const type = (error as { type?: unknown }).type;
    if (type === 'entity.too.large') {
      throw new GatewayError('payload_too_large', `The request body exceeds ${limitBytes} bytes.`);
    }
    throw new GatewayError('invalid_body', 'The request body could not be read.', { cause: error });
  }
  let text: string;
  try {
    text = strictUtf8.decode(raw);
  } catch {
    throw new GatewayError('invalid_json', 'The request body is not valid UTF-8.');
  }
  if (text.trim() === '') throw new GatewayError('invalid_json', 'The request body is empty; expected JSON.');
  try {
    return JSON.parse(text);
  } catch {
    throw new GatewayError('invalid_json', 'The request body is not valid JSON.');
  }
}
