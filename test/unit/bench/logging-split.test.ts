import { describe, expect, it } from 'vitest';
import { loggingSplitRows } from '../../../bench/lib/report.ts';
import type { InterleavedResult } from '../../../bench/lib/interleaved.ts';

/** Only what the split rows read; the rest of a saved run does not matter to them. */
const il = (extra: Partial<InterleavedResult>) => ({ median: { pipe: 1.6, warn: 1.9, info: 2.05 }, ...extra }) as InterleavedResult;

describe('the info + audit cost read apart', () => {
  it('prints the log lines over warn and the audit over info without it, each against 5 %', () => {
    const rows = loggingSplitRows(il({ logOnlyCpuMsPerSession: [1.98], logOnlyMedian: 1.98, logOnlyOverWarn: 1.042, infoOverLogOnly: 1.061 }));
    expect(rows).toEqual([
      ['  of it, the info log lines (audit off) over warn', 'info ÷ warn', '1.98', '1.90', '+4.2 %', '≤ +5 %', 'ok'],
      ['  of it, the audit over info without it', 'info+audit ÷ info', '2.05', '1.98', '+6.1 %', '≤ +5 %', 'MISS'],
    ]);
  });

  it('reads a gateway cheaper than the one below it as a negative share, not a MISS', () => {
    const rows = loggingSplitRows(il({ logOnlyMedian: 1.85, logOnlyOverWarn: 0.97, infoOverLogOnly: 1.0 }));
    expect(rows.map((r) => [r[4], r[6]])).toEqual([['-3.0 %', 'ok'], ['+0.0 %', 'ok']]);
  });

  it('prints nothing for a run saved before the fourth gateway existed', () => {
    expect(loggingSplitRows(il({}))).toEqual([]);
  });
});
