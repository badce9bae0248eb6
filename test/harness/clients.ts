import { runProcess, type RunResult } from './child-processes.ts';

/**
 * Real POP3 clients run as child processes, each with a timeout (SIGKILL by PID):
 * python3 poplib, curl (pop3:// and pop3s://) and openssl s_client.
 */

export interface TextResult {
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface PoplibOptions {
  host?: string;
  port: number;
  /** CA file the SSL context trusts (CTX in the script). */
  caFile?: string | null;
  /** CTX skips certificate and host name checks. */
  insecure?: boolean;
  /** Available to the script as USER and PASSWORD. */
  user?: string;
  password?: string;
  timeoutMs?: number;
}

const PYTHON = process.env.POP3GW_PYTHON ?? 'python3';

function text(result: RunResult): TextResult {
  return { code: result.code, stdout: result.stdout.toString('utf8'), stderr: result.stderr.toString('utf8'), timedOut: result.timedOut };
}

/**
 * Runs a Python script that uses poplib. The prelude defines HOST, PORT, USER,
 * PASSWORD, CAFILE, TIMEOUT (seconds), CTX (an ssl.SSLContext trusting CAFILE,
 * or not verifying when `insecure`), plus helpers:
 *   connect() -> poplib.POP3(HOST, PORT, timeout=TIMEOUT)
 *   connect_ssl() -> poplib.POP3_SSL(HOST, PORT, context=CTX, timeout=TIMEOUT)
 *   body(resp) -> the bytes of a retr()/top() reply joined with CRLF
 *   out(obj) -> prints obj as one JSON line (bytes become latin1 strings)
 * The script's stdout/stderr and exit code are returned; an uncaught Python
 * exception gives code 1 and a traceback in stderr.
 */
export async function poplib(script: string, opts: PoplibOptions): Promise<TextResult> {
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const prelude = [
    'import json, poplib, ssl, sys',
    `HOST = ${JSON.stringify(opts.host ?? '127.0.0.1')}`,
    `PORT = ${opts.port}`,
    `USER = ${JSON.stringify(opts.user ?? '')}`,
    `PASSWORD = ${JSON.stringify(opts.password ?? '')}`,
    `CAFILE = ${opts.caFile ? JSON.stringify(opts.caFile) : 'None'}`,
    `INSECURE = ${opts.insecure ? 'True' : 'False'}`,
    `TIMEOUT = ${Math.max(1, Math.floor(timeoutMs / 1000) - 1)}`,
    'CTX = ssl.create_default_context(cafile=CAFILE) if CAFILE else ssl.create_default_context()',
    'if INSECURE:',
    '    CTX.check_hostname = False',
    '    CTX.verify_mode = ssl.CERT_NONE',
    'def connect():',
    '    return poplib.POP3(HOST, PORT, timeout=TIMEOUT)',
    'def connect_ssl():',
    '    return poplib.POP3_SSL(HOST, PORT, context=CTX, timeout=TIMEOUT)',
    'def body(resp):',
    "    return b'\\r\\n'.join(resp[1])",
    'def _plain(o):',
    '    if isinstance(o, bytes): return o.decode("latin1")',
    '    if isinstance(o, (list, tuple)): return [_plain(x) for x in o]',
    '    if isinstance(o, dict): return {k: _plain(v) for k, v in o.items()}',
    '    return o',
    'def out(obj):',
    '    print(json.dumps(_plain(obj)), flush=True)',
    '',
  ].join('\n');
  return text(await runProcess(PYTHON, ['-c', `${prelude}\n${script}`], { timeoutMs }));
}

export interface CurlOptions {
  user: string;
  password: string;
  insecure?: boolean;
  caFile?: string;
  extra?: string[];
  timeoutMs?: number;
}

export interface CurlResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
  timedOut: boolean;
}

/**
 * curl against pop3:// or pop3s:// URLs ("pop3://127.0.0.1:PORT/1" retrieves
 * message 1; add extra ['--ssl-reqd'] for STLS on pop3://).
 */
export async function curlPop3(url: string, opts: CurlOptions): Promise<CurlResult> {
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const args = ['--silent', '--show-error', '--max-time', String(Math.max(1, Math.floor(timeoutMs / 1000) - 1))];
  // Credentials through a config on stdin rather than argv (argv is visible in ps).
  args.push('--config', '-');
  if (opts.insecure) args.push('--insecure');
  if (opts.caFile) args.push('--cacert', opts.caFile);
  args.push(...(opts.extra ?? []), url);
  const config = `user = ${JSON.stringify(`${opts.user}:${opts.password}`)}\n`;
  const result = await runProcess('curl', args, { timeoutMs, input: config });
  return { code: result.code, stdout: result.stdout, stderr: result.stderr.toString('utf8'), timedOut: result.timedOut };
}

export interface OpensslClientOptions {
  host: string;
  port: number;
  /** -starttls pop3: s_client reads the greeting, sends STLS itself, then hands over. */
  starttls?: boolean;
  /** Lines to send (split on LF; each is sent with CRLF), one per pause. */
  input: string;
  servername?: string;
  alpn?: string;
  /** Verify against this CA and fail on a bad certificate (-verify_return_error). */
  caFile?: string;
  extraArgs?: string[];
  /** Pause between input lines (default 150 ms). */
  pauseMs?: number;
  timeoutMs: number;
}

/**
 * openssl s_client -quiet. Without starttls the first line is sent once the
 * greeting arrived; with starttls (s_client prints nothing after the upgrade)
 * after the TLS handshake output or 500 ms. -quiet implies -ign_eof, so the run
 * ends when the server closes (send QUIT last) or at timeoutMs.
 */
export async function opensslClient(opts: OpensslClientOptions): Promise<TextResult> {
  const args = ['s_client', '-connect', `${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${opts.port}`, '-quiet'];
  if (opts.starttls) args.push('-starttls', 'pop3');
  if (opts.servername) args.push('-servername', opts.servername);
  if (opts.alpn) args.push('-alpn', opts.alpn);
  if (opts.caFile) args.push('-CAfile', opts.caFile, '-verify_return_error');
  args.push(...(opts.extraArgs ?? []));
  const lines = opts.input.split('\n').map((l) => l.replace(/\r$/, '')).filter((l, i, all) => l !== '' || i < all.length - 1);
  const pauseMs = opts.pauseMs ?? 150;
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  const result = await runProcess('openssl', args, {
    timeoutMs: opts.timeoutMs,
    feed: async (child) => {
      const stdin = child.stdin!;
      let gotOutput = false;
      const onData = () => (gotOutput = true);
      child.stdout?.once('data', onData);
      if (opts.starttls) child.stderr?.once('data', onData);
      const start = Date.now();
      const firstWait = opts.starttls ? 500 : Math.min(5000, opts.timeoutMs);
      while (!gotOutput && Date.now() - start < firstWait && child.exitCode === null) await sleep(10);
      if (opts.starttls) await sleep(100); // verify lines arrive just before the handshake ends
      for (const line of lines) {
        if (child.exitCode !== null || stdin.destroyed) return;
        stdin.write(`${line}\r\n`);
        await sleep(pauseMs);
      }
      // Keep stdin open: closing it early makes some s_client builds quit before the reply.
    },
  });
  return text(result);
}
