import { describe, expect, it } from 'vitest';
import { backendCases } from '../support/backends.js';
import { sleep } from '../support/wait.js';
import { useTestGateway } from '../support/gateway.js';

describe.each(backendCases('message expiry and mailbox summary'))('message expiry and the mailbox summary on $name', ({ make }) => {
  const gw = useTestGateway(make, { MESSAGE_TTL_MAX_S: '3600' });
  const { nextUser, publish } = gw;

  it('gives a device that was offline only the commands still valid, in order', async () => {
    const [backendService, device] = [nextUser(), nextUser()];
    // Scaled down: "valid for an hour" vs "valid for a second", and the device is away 1.2 s.
    const commands = [
      { id: 'c1', ttl: 3600, body: 'unlock' },
      { id: 'c2', ttl: 1, body: 'ring now' },
      { id: 'c3', body: 'sync settings' },
      { id: 'c4', ttl: 1, body: 'show code 1234' },
    ];
    for (const command of commands) expect((await publish(backendService, { to: device, ...command })).status).toBe(201);
    const batch = await publish(backendService, { messages: [{ to: device, id: 'c5', ttl: 3600, body: 'lock at 22:00' }] }, '/v1/messages/batch');
    expect(batch.status).toBe(201);
    await sleep(1_200);

    const summary = (await (await gw.request('/v1/mailbox', { token: await gw.token(device) })).json()) as { pending: number; oldestAt: string };
    expect(summary.pending).toBe(3);
    expect(Date.parse(summary.oldestAt)).toBeLessThanOrEqual(Date.now());

    const polled = await gw.poll(device);
    expect(polled.messages.map((m) => m.body)).toEqual(['unlock', 'sync settings', 'lock at 22:00']);
    // Expiring messages say when; others carry no expiresAt.
    expect(polled.messages.map((m) => m.expiresAt === undefined)).toEqual([false, true, false]);
    expect(Date.parse(polled.messages[0]!.expiresAt!) - Date.parse(polled.messages[0]!.createdAt)).toBe(3_600_000);
  });

  it('skips an expired message when a held poll is woken by a newer one', async () => {
    const [sender, device] = [nextUser(), nextUser()];
    await publish(sender, { to: device, id: 'short', ttl: 1, body: 'gone soon' });
    await sleep(1_100);
    const held = gw.poll(device, 'wait=2');
    await sleep(200);
    await publish(sender, { to: device, id: 'long', ttl: 60, body: 'still valid' });
    const polled = await held;
    expect(polled.messages.map((m) => m.body)).toEqual(['still valid']);
  });

  it.each([
    ['zero', 0],
    ['negative', -5],
    ['a fraction', 1.5],
    ['a string', '60'],
    ['above MESSAGE_TTL_MAX_S', 3601],
  ])('refuses a ttl that is %s with 400 invalid_ttl and stores nothing, also in a batch', async (_name, ttl) => {
    const [sender, device] = [nextUser(), nextUser()];
    const single = await publish(sender, { to: device, ttl, body: 'x' });
    expect(single.status).toBe(400);
    expect(await single.json()).toMatchObject({ error: { code: 'invalid_ttl' } });
    const batch = await publish(sender, { messages: [{ to: device, body: 'ok' }, { to: device, ttl, body: 'x' }] }, '/v1/messages/batch');
    expect(batch.status).toBe(400);
    expect(await batch.json()).toMatchObject({ error: { code: 'invalid_ttl' } });
    const rows = await gw.knex('messages').where({ user_id: device }).count({ n: '*' }).first();
    expect(Number(rows?.n)).toBe(0);
  });

  it('summarises an empty mailbox', async () => {
    const response = await gw.request('/v1/mailbox', { token: await gw.token(nextUser()) });
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('no-store, no-cache, must-revalidate');
    expect(await response.json()).toEqual({ pending: 0, oldestAt: null });
  });
});

describe.each(backendCases('default message ttl'))('MESSAGE_TTL_DEFAULT_S on $name', ({ make }) => {
  const gw = useTestGateway(make, { MESSAGE_TTL_DEFAULT_S: '1' });

  it('expires messages published without a ttl after the default', async () => {
    const [sender, device] = [gw.nextUser(), gw.nextUser()];
    await gw.publish(sender, { to: device, body: 'short-lived' });
    await gw.publish(sender, { to: device, ttl: 60, body: 'explicit' });
    await sleep(1_100);
    const polled = await gw.poll(device);
    expect(polled.messages.map((m) => m.body)).toEqual(['explicit']);
  });
});
