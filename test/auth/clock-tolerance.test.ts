import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { backendCases, TEST_SECRET } from '../support/backends.js';
import { useTestGateway } from '../support/gateway.js';

/** A token for `subject` whose `exp` passed `secondsAgo` seconds ago (a device with a clock that is behind sends such). */
function expiredToken(subject: string, secondsAgo: number): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(subject)
    .setIssuedAt(now - secondsAgo - 60)
    .setExpirationTime(now - secondsAgo)
    .sign(new TextEncoder().encode(TEST_SECRET));
}

describe.each(backendCases('token clock tolerance'))('token clock tolerance on $name', ({ make }) => {
  const strict = useTestGateway(make, { JWT_CLOCK_TOLERANCE_S: '0' });
  const lenient = useTestGateway(make, { JWT_CLOCK_TOLERANCE_S: '120' });
  const byDefault = useTestGateway(make);

  const poll = (gateway: typeof strict, token: string) => gateway.request('/v1/poll?wait=0', { token });

  it('refuses a token just past its exp when the tolerance is 0', async () => {
    const response = await poll(strict, await expiredToken(strict.nextUser(), 2));
    expect(response.status).toBe(401);
    expect(await response.json()).toMatchObject({ error: { code: 'token_expired' } });
  });

  it('accepts a token until JWT_CLOCK_TOLERANCE_S after its exp, and not after that', async () => {
    expect((await poll(lenient, await expiredToken(lenient.nextUser(), 60))).status).toBe(200);
    const tooLate = await poll(lenient, await expiredToken(lenient.nextUser(), 180));
    expect(tooLate.status).toBe(401);
    expect(await tooLate.json()).toMatchObject({ error: { code: 'token_expired' } });
  });

  it('tolerates 5 seconds by default, as the README says', async () => {
    expect((await poll(byDefault, await expiredToken(byDefault.nextUser(), 2))).status).toBe(200);
    expect((await poll(byDefault, await expiredToken(byDefault.nextUser(), 30))).status).toBe(401);
  });
});
