import type { Knex } from 'knex';

/**
 * Delivery receipts. `receipt` marks a message whose sender asked for one; the ack that covers it
 * sets `receipt_due`, and the receipt pump turns due rows into receipt rows in the sender's mailbox
 * and clears the flag in the same transaction (so exactly one receipt per message, across restarts
 * and re-acks). `idx_messages_receipt_due` keeps the pump's "anything due?" a range of the few due
 * rows. `mailboxes.delivered_seq` is the highest sequence number any poll answer has carried: a
 * message at or below it was delivered (kept per mailbox, so answering a poll writes no message row).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('messages', (table) => {
    table.boolean('receipt').notNullable().defaultTo(false);
    table.boolean('receipt_due').notNullable().defaultTo(false);
  });
  await knex.schema.alterTable('messages', (table) => {
    table.index(['receipt_due'], 'idx_messages_receipt_due');
  });
  await knex.schema.alterTable('mailboxes', (table) => {
    table.bigInteger('delivered_seq').notNullable().defaultTo(0);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('mailboxes', (table) => {
    table.dropColumn('delivered_seq');
  });
  await knex.schema.alterTable('messages', (table) => {
    table.dropIndex(['receipt_due'], 'idx_messages_receipt_due');
  });
  await knex.schema.alterTable('messages', (table) => {
    table.dropColumn('receipt_due');
    table.dropColumn('receipt');
  });
}
