/**
 * Coalesces "what does this user have unacked?" probes made in the same tick into one query
 * over many users. A gateway that restarts under tens of thousands of clients sees them all poll
 * at once; one query per poll would queue them on the connection pool for seconds.
 */
export function createProbeBatcher<T>(
  probeMany: (userIds: string[]) => Promise<Map<string, T[]>>,
  options: { maxBatch?: number } = {},
): (userId: string) => Promise<T[]> {
  const maxBatch = options.maxBatch ?? 500;
  let waiting = new Map<string, Array<{ resolve: (found: T[]) => void; reject: (error: unknown) => void }>>();
  let scheduled = false;

  function flush(): void {
    scheduled = false;
    const batch = waiting;
    waiting = new Map();
    const userIds = [...batch.keys()];
    for (let start = 0; start < userIds.length; start += maxBatch) {
      const chunk = userIds.slice(start, start + maxBatch);
      probeMany(chunk).then(
        (found) => {
          for (const userId of chunk) for (const waiter of batch.get(userId)!) waiter.resolve(found.get(userId) ?? []);
        },
        (error: unknown) => {
          for (const userId of chunk) for (const waiter of batch.get(userId)!) waiter.reject(error);
        },
      );
    }
  }

  return function probe(userId: string): Promise<T[]> {
    return new Promise<T[]>((resolve, reject) => {
      const list = waiting.get(userId);
      if (list) list.push({ resolve, reject });
      else waiting.set(userId, [{ resolve, reject }]);
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    });
  };
}
