/**
 * The contract's `"msg":"listening"` lines are for scripts that wait for the gateway:
 * they are printed whatever `logging.level` says, through a child logger at info.
 */
import type { Logger } from '../util/logger.ts';

/** pino's child() also takes options; `isLevelEnabled` is on Logger itself. */
interface LevelledLogger extends Logger {
  child(bindings: Record<string, unknown>, options?: { level?: string }): Logger;
}

export function lifecycleLogger(log: Logger): Logger {
  const l = log as LevelledLogger;
  if (typeof l.isLevelEnabled !== 'function' || l.isLevelEnabled('info')) return log;
  return l.child({}, { level: 'info' });
}
