import net from 'node:net';

/**
 * A keep-alive HTTP/1.1 GET client on a bare socket, for load generators that hold thousands of
 * polls from one core: no request objects, no header objects, one pre-built request head per
 * connection. node:http's client costs several times more CPU per request, which made the
 * broadcast benchmark measure its own load generator (10,000 readers × 10 messages/s). It reads
 * `Content-Length` and chunked bodies, and nothing else of the response but its status.
 */
export class RawHttpConnection {
  private readonly socket: net.Socket;
  private buffer = '';
  private pending: { resolve(answer: { status: number; body: string }): void; reject(error: Error): void } | undefined;
  private closedWith: Error | undefined;

  constructor(
    host: string,
    port: number,
    private readonly headers: string,
  ) {
    this.socket = net.connect({ host, port, noDelay: true });
    this.socket.setEncoding('latin1');
    this.socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      this.parse();
    });
    const fail = (error: Error) => {
      this.closedWith ??= error;
      const pending = this.pending;
      this.pending = undefined;
      pending?.reject(error);
    };
    this.socket.on('error', fail);
    this.socket.on('close', () => fail(new Error('connection closed')));
  }

  /** One GET on this connection (one at a time), resolved with the status and the body as text. */
  get(path: string): Promise<{ status: number; body: string }> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    if (this.pending) return Promise.reject(new Error('one request at a time'));
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.socket.write(`GET ${path} HTTP/1.1\r\n${this.headers}\r\n`);
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private parse(): void {
    if (!this.pending) return;
    const headEnd = this.buffer.indexOf('\r\n\r\n');
    if (headEnd === -1) return;
    const head = this.buffer.slice(0, headEnd);
    const status = Number(head.slice(9, 12));
    const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    let body: string;
    let rest: string;
    if (length) {
      const end = headEnd + 4 + Number(length[1]);
      if (this.buffer.length < end) return;
      body = this.buffer.slice(headEnd + 4, end);
      rest = this.buffer.slice(end);
    } else if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
      const chunks: string[] = [];
      let at = headEnd + 4;
      for (;;) {
        const sizeEnd = this.buffer.indexOf('\r\n', at);
        if (sizeEnd === -1) return;
        const size = Number.parseInt(this.buffer.slice(at, sizeEnd), 16);
        if (this.buffer.length < sizeEnd + 2 + size + 2) return;
        if (size === 0) {
          rest = this.buffer.slice(sizeEnd + 4);
          break;
        }
        chunks.push(this.buffer.slice(sizeEnd + 2, sizeEnd + 2 + size));
        at = sizeEnd + 2 + size + 2;
      }
      body = chunks.join('');
    } else {
      this.pending.reject(new Error(`response without a length: ${head.split('\r\n')[0]}`));
      this.pending = undefined;
      return;
    }
    this.buffer = rest;
    const { resolve } = this.pending;
    this.pending = undefined;
    // The bodies are ASCII JSON here (latin1 keeps byte offsets equal to string offsets).
    resolve({ status, body });
  }
}
