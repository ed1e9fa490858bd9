import type { FetchLike } from '../../../src/client/index.js';

export interface XhrRecord {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: string | null;
  aborted: boolean;
}

/**
 * Builds an XMLHttpRequest class (for a `node:vm` context) that forwards to an injected fetch, such
 * as the fake gateway's. It lives in the test's realm, so it works in a context with no Promise.
 */
export function createFakeXhrClass(fetch: FetchLike, records: XhrRecord[]) {
  return class FakeXMLHttpRequest {
    readyState = 0;
    status = 0;
    responseText = '';
    onreadystatechange: (() => void) | null = null;
    #record: XhrRecord | undefined;
    #controller = new AbortController();
    #responseHeaders = new Headers();

    open(method: string, url: string) {
      this.#record = { method, url, headers: {}, body: null, aborted: false };
      this.readyState = 1;
    }

    setRequestHeader(name: string, value: string) {
      this.#record!.headers[name.toLowerCase()] = value;
    }

    getResponseHeader(name: string): string | null {
      return this.#responseHeaders.get(name);
    }

    send(body: string | null) {
      const record = this.#record!;
      record.body = body;
      records.push(record);
      const headers = new Headers(record.headers);
      fetch(new URL(record.url, 'http://page.test/').href, {
        method: record.method,
        headers,
        body: body ?? undefined,
        signal: this.#controller.signal,
      }).then(
        async (response) => {
          const text = await response.text();
          if (record.aborted) return;
          this.#responseHeaders = response.headers;
          this.status = response.status;
          this.responseText = text;
          this.#complete();
        },
        () => {
          if (record.aborted) return;
          this.status = 0;
          this.#complete();
        },
      );
    }

    abort() {
      if (!this.#record || this.#record.aborted) return;
      this.#record.aborted = true;
      this.#controller.abort();
      this.status = 0;
      this.#complete();
    }

    #complete() {
      this.readyState = 4;
      this.onreadystatechange?.();
    }
  };
}
