import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDemoBackend } from '../demo/backend.ts';

/**
 * `npm run demo`: the sample POP3 backend on 127.0.0.1:1110 (user demo,
 * password demo) plus the gateway from src/cli.ts with ./gateway.yaml (or
 * --config FILE; --backend-port N if that config points elsewhere).
 * SIGINT/SIGTERM go to the gateway (it finishes live sessions), then the
 * backend stops and this script exits with the gateway's exit code.
 */

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const arg = (name: string): string | undefined => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const configFile = path.resolve(arg('--config') ?? path.join(root, 'gateway.yaml'));
const backendPort = Number(arg('--backend-port') ?? 1110);

const backend = await startDemoBackend({ host: '127.0.0.1', port: backendPort }).catch((err: unknown) => {
  process.stderr.write(`demo: cannot start the demo backend on 127.0.0.1:${backendPort}: ${String(err)}\n`);
  process.exit(1);
});
process.stdout.write(`demo: sample POP3 backend on 127.0.0.1:${backend.port} (user demo, password demo)\n`);

// Own process group: a terminal Ctrl-C reaches only this script, which forwards
// exactly one signal to the gateway.
const gateway = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src', 'cli.ts'), '--config', configFile], {
  cwd: root,
  stdio: ['ignore', 'pipe', 'inherit'],
  detached: true,
});
const gatewayPid = gateway.pid;
process.on('exit', () => {
  if (gateway.exitCode === null && gateway.signalCode === null && gatewayPid !== undefined) process.kill(gatewayPid, 'SIGTERM');
});

const listening: string[] = [];
let bannerTimer: NodeJS.Timeout | null = null;
let partial = '';
gateway.stdout.on('data', (chunk: Buffer) => {
  process.stdout.write(chunk);
  partial += chunk.toString('utf8');
  let nl: number;
  while ((nl = partial.indexOf('\n')) >= 0) {
    const line = partial.slice(0, nl);
    partial = partial.slice(nl + 1);
    try {
      const entry = JSON.parse(line) as { msg?: string; listener?: string; host?: string; port?: number };
      if (entry.msg === 'listening') {
        listening.push(`${entry.listener ?? '?'} on ${entry.host ?? '?'}:${entry.port ?? '?'}`);
        if (bannerTimer) clearTimeout(bannerTimer);
        bannerTimer = setTimeout(printBanner, 300);
      }
    } catch {
      // not a JSON log line: already echoed above
    }
  }
});

function printBanner(): void {
  process.stdout.write(
    [
      '',
      '================ pop3-gateway demo ================',
      `gateway listeners: ${listening.join(', ')}`,
      'The certificate is self-signed unless gateway.yaml names one, hence -k / no verification.',
      'Try:',
      '  curl -k pop3s://localhost/1 -u demo:demo                  # RETR 1 over implicit TLS',
      '  curl -k pop3s://localhost/ -u demo:demo                   # LIST',
      '  curl -k --ssl-reqd pop3://localhost/2 -u demo:demo        # STLS, then RETR 2 (dot-stuffed lines)',
      '  openssl s_client -connect localhost:995 -quiet            # then: USER demo / PASS demo / STAT / RETR 1 / QUIT',
      '  openssl s_client -starttls pop3 -connect localhost:110 -quiet',
      'Ctrl-C stops the gateway (after live sessions finish) and the backend.',
      '===================================================',
      '',
    ].join('\n'),
  );
}

let signalled = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (signalled || gatewayPid === undefined) return;
    signalled = true;
    process.stdout.write(`demo: ${signal}, stopping the gateway\n`);
    if (gateway.exitCode === null && gateway.signalCode === null) process.kill(gatewayPid, signal);
  });
}

gateway.once('error', (err) => {
  process.stderr.write(`demo: cannot start the gateway: ${err.message}\n`);
  void backend.close().then(() => process.exit(1));
});
gateway.once('exit', (code, signal) => {
  if (bannerTimer) clearTimeout(bannerTimer);
  process.stdout.write(`demo: gateway exited (${signal ?? `code ${code}`}); stopping the backend\n`);
  void backend.close().then(() => process.exit(code ?? (signal ? 1 : 0)));
});
