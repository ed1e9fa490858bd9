import type { StoredMessage } from '../../core/model.js';

// The names of the schema that db/migrations creates, as the store's statements use them. The one
// value a migration writes and the store reads back (the seq_floor setting's name) lives here and
// migration 003 imports it, so the two cannot drift.

export const MESSAGES_TABLE = 'messages';
export const MAILBOXES_TABLE = 'mailboxes';
export const SETTINGS_TABLE = 'delivery_settings';

/**
 * The `delivery_settings` row holding the sequence floor: where the mailboxes' sequences start
 * (above every id a database upgraded from cursor-by-id ever issued).
 */
export const SEQ_FLOOR_SETTING = 'seq_floor';

export const MESSAGE_COLUMNS = ['id', 'user_id', 'sender_id', 'client_msg_id', 'body', 'created_at', 'seq', 'expires_at'] as const;

/** A `messages` row as either driver returns it: MySQL BIGINTs may come back as strings. */
export interface MessageRow {
  id: number | string;
  seq: number | string;
  expires_at: number | string | null;
  user_id: string;
  sender_id: string;
  client_msg_id: string | null;
  body: string;
  created_at: number | string;
}

export function toStoredMessage(row: MessageRow): StoredMessage {
  return {
    id: Number(row.id),
    userId: row.user_id,
    senderId: row.sender_id,
    clientMessageId: row.client_msg_id,
    body: row.body,
    createdAt: Number(row.created_at),
    seq: Number(row.seq),
    expiresAt: row.expires_at === null || row.expires_at === undefined ? null : Number(row.expires_at),
  };
}

/** Rows of a raw SELECT: mysql2 answers [rows, fields], better-sqlite3 the rows. */
export function resultRows<Row>(result: unknown): Row[] {
  return (Array.isArray(result) && Array.isArray(result[0]) ? result[0] : result) as Row[];
}

/** Rows changed by a raw UPDATE: mysql2 answers [ResultSetHeader], better-sqlite3 {changes}. */
export function affectedRows(result: unknown): number {
  if (Array.isArray(result)) return Number((result[0] as { affectedRows?: number }).affectedRows ?? 0);
  return Number((result as { changes?: number }).changes ?? 0);
}
