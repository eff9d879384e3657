/**
 * Structured logs with pino. Secrets are redacted by path so that a config or an error object
 * logged whole still never shows one.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

const REDACT = [
  'password',
  '*.password',
  '*.*.password',
  'secretAccessKey',
  '*.secretAccessKey',
  '*.*.secretAccessKey',
  'sessionToken',
  '*.sessionToken',
  '*.*.sessionToken',
  'authorization',
  '*.authorization',
  'headers.authorization',
];

export interface LoggerOptions {
  level?: string;
  /** `pretty` prints one readable line per event for terminals, without pulling in pino-pretty. */
  format?: 'auto' | 'json' | 'pretty';
  /** Where to write; stderr by default so that command output on stdout stays clean for pipes. */
  destination?: NodeJS.WritableStream;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const destination = options.destination ?? process.stderr;
  const base = { level: options.level ?? 'info', redact: { paths: REDACT, censor: '[redacted]' }, base: undefined };
  const tty = (destination as NodeJS.WriteStream).isTTY === true;
  if (options.format === 'pretty' || (options.format === 'auto' && tty)) {
    return pino({ ...base, timestamp: false }, prettyStream(destination));
  }
  return pino({ ...base, timestamp: pino.stdTimeFunctions.isoTime }, destination as pino.DestinationStream);
}

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

/** A tiny line formatter: `INFO  message key=value`. */
function prettyStream(out: NodeJS.WritableStream): pino.DestinationStream {
  return {
    write(line: string) {
      let rec: Record<string, unknown>;
      try {
        rec = JSON.parse(line) as Record<string, unknown>;
      } catch {
        out.write(line);
        return;
      }
      const { level, msg, ...rest } = rec;
      const fields = Object.entries(rest)
        .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
        .join(' ');
      out.write(
        `${(LEVELS[Number(level)] ?? 'LOG').padEnd(5)} ${typeof msg === 'string' ? msg : ''}${fields ? `  ${fields}` : ''}\n`,
      );
    },
  };
}
