import { expect } from 'vitest';

/** A poller's `client` id as both builds make one up: 22 characters of base64url. */
export const MADE_UP_CLIENT_ID = /^[A-Za-z0-9_-]{22}$/;

/** Matches a made-up client id inside `toEqual` (a checkpoint, a poll's parameters). */
export const ANY_CLIENT_ID = expect.stringMatching(MADE_UP_CLIENT_ID);
