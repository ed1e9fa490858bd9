import { describe, expect, it } from 'vitest';
import { runFaults } from '../../scripts/faults.js';
import { mysqlRedisCases } from '../support/backends.js';

// Runs only where the real servers are expected (CI=true makes that mandatory): the script needs
// mariadbd and redis-server binaries, and starts its own instances on free ports.
const realCases = mysqlRedisCases('fault injection');

describe.skipIf(realCases.length === 0)('fault injection (scripts/faults.ts --short)', () => {
  it('loses and duplicates nothing while Redis, MariaDB and gateways are killed and restarted', async () => {
    const lines: string[] = [];
    const reports = await runFaults({ short: true, log: (line) => lines.push(line) });
    const context = lines.join('\n');
    expect(reports.map((report) => report.fault), context).toEqual([
      'none (baseline)',
      'redis SIGKILL + restart',
      'mariadb SIGKILL + restart',
      'mariadb SIGTERM + restart',
      'gateway SIGKILL + restart',
      'gateway SIGTERM (drain) + restart',
      'redis + gateway SIGKILL together',
    ]);
    for (const report of reports) {
      expect(report.published, `${report.fault}\n${context}`).toBe(60);
      expect({ fault: report.fault, lost: report.lost, duplicated: report.duplicated, orderViolations: report.orderViolations }).toEqual({
        fault: report.fault,
        lost: 0,
        duplicated: 0,
        orderViolations: 0,
      });
    }
    // While MariaDB was down a publish got a retryable 503 and stored nothing.
    const storeDown = reports.find((report) => report.storeDownPublish)?.storeDownPublish;
    expect(storeDown).toEqual({ status: 503, retryAfter: expect.stringMatching(/^\d+$/), code: 'store_unavailable', storedAnyway: false });
  }, 150_000);
});
