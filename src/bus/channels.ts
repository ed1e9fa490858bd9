/** All channel naming lives here, so the Redis bus and any tool that publishes agree. */
export function userChannel(prefix: string, userId: string): string {
  return `${prefix}wake:${userId}`;
}

export function userFromChannel(prefix: string, channel: string): string | undefined {
  const head = `${prefix}wake:`;
  return channel.startsWith(head) ? channel.slice(head.length) : undefined;
}
