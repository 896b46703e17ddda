import pino, { type Logger } from 'pino';
import type { Config } from './config';

/** The one structured logger of every process (JSON lines on stdout, level from LOG_LEVEL). */
export function createLogger(config: Pick<Config, 'LOG_LEVEL'>): Logger {
  return pino({ level: config.LOG_LEVEL, base: undefined });
}
