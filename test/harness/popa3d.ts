import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { onProcessExit } from './child-processes.ts';

/**
 * A real legacy POP3 server: popa3d (Debian package popa3d). It has no CAPA
 * (answers -ERR), no STLS, no APOP/SASL, and answers USER/PASS/STAT/LIST/UIDL/
 * TOP/RETR/DELE/LAST/NOOP/RSET/QUIT.
 *
 * popa3d conflicts with dovecot-pop3d in apt, so it is not installed: the .deb
 * is fetched with `apt-get download` and unpacked with `dpkg -x` into a cache
 * folder. Debian's popa3d is meant for inetd (its -D mode binds port 110 only),
 * so a Node listener on a free loopback port spawns one popa3d per connection
 * and pipes the socket to its stdin/stdout, as inetd would.
 *
 * popa3d authenticates through PAM (service "popa3d", absent, so PAM's "other"
 * = common-auth/pam_unix) against system users and reads the mbox spool
 * /var/mail/USER. Each instance therefore creates its own system user
 * (useradd + chpasswd, removed again by stop()), and needs the system user
 * `popa3d` plus the chroot folder /var/lib/popa3d that the package postinst
 * would have made: created here when missing. Needs root.
 */

export interface Popa3dInstance {
  host: '127.0.0.1';
  port: number;
  user: string;
  password: string;
  mboxFile: string;
  /**
   * Appends one message to the user's mbox spool (CRLF becomes LF; body lines
   * starting "From " are quoted as ">From ", and popa3d serves them that way).
   * Its UIDL comes from headers such as Message-ID: give each message one.
   */
  addMessage(content: Buffer | string): void;
  stop(): Promise<void>;
}

const CACHE_DIR = process.env.POP3GW_CACHE_DIR ?? path.join(os.tmpdir(), 'pop3gw-popa3d');
const USER_PREFIX = 'p3gw';

function run(cmd: string, args: string[], opts: { input?: string; cwd?: string } = {}): string {
  return execFileSync(cmd, args, { input: opts.input, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'], timeout: 120_000 }).toString();
}

/** useradd/userdel/chpasswd fail with "cannot lock /etc/passwd" while another worker holds the lock. */
function runLocked(cmd: string, args: string[], opts: { input?: string } = {}): string {
  for (let attempt = 0; ; attempt++) {
    try {
      return run(cmd, args, opts);
    } catch (err) {
      const stderr = String((err as { stderr?: Buffer }).stderr ?? '');
      if (attempt >= 50 || !/lock/i.test(stderr)) throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
    }
  }
}

function userExists(name: string): boolean {
  try {
    run('getent', ['passwd', name]);
    return true;
  } catch {
    return false; // getent exits 2 when the name is unknown
  }
}

/** The popa3d binary: $POP3GW_POPA3D_BIN, an installed /usr/sbin/popa3d, or one unpacked into the cache. */
export function ensurePopa3dBinary(): string {
  const fromEnv = process.env.POP3GW_POPA3D_BIN;
  if (fromEnv) return fromEnv;
  if (fs.existsSync('/usr/sbin/popa3d')) return '/usr/sbin/popa3d';
  const cached = path.join(CACHE_DIR, 'root', 'usr', 'sbin', 'popa3d');
  if (fs.existsSync(cached)) return cached;

  fs.mkdirSync(CACHE_DIR, { recursive: true });
  // Download and unpack in a private folder, then rename into place, so two
  // test workers doing this at once cannot see a half-unpacked tree.
  const work = fs.mkdtempSync(path.join(CACHE_DIR, 'download-'));
  try {
    run('apt-get', ['download', 'popa3d'], { cwd: work });
    const deb = fs.readdirSync(work).find((f) => f.startsWith('popa3d_') && f.endsWith('.deb'));
    if (!deb) throw new Error(`apt-get download popa3d produced no .deb in ${work}`);
    run('dpkg', ['-x', path.join(work, deb), path.join(work, 'root')]);
    try {
      fs.renameSync(path.join(work, 'root'), path.join(CACHE_DIR, 'root'));
    } catch (err) {
      if (!fs.existsSync(cached)) throw err; // someone else won the race: fine
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  if (!fs.existsSync(cached)) throw new Error(`popa3d binary not found at ${cached} after unpacking`);
  return cached;
}

/** The unprivileged user and chroot folder popa3d drops to (normally made by the package postinst). */
function ensurePopa3dSystemUser(): void {
  if (!userExists('popa3d')) {
    try {
      runLocked('useradd', ['--system', '--home-dir', '/var/lib/popa3d', '--no-create-home', '--shell', '/usr/sbin/nologin', 'popa3d']);
    } catch (err) {
      if (!userExists('popa3d')) throw err; // a parallel worker created it first
    }
  }
  fs.mkdirSync('/var/lib/popa3d', { recursive: true, mode: 0o755 });
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function deleteUser(name: string): void {
  try {
    runLocked('userdel', [name]);
  } catch (err) {
    if (userExists(name)) throw err;
  }
  fs.rmSync(path.join('/var/mail', name), { force: true });
}

/** Test users are named p3gw<owner pid>x<random hex>; remove those whose owner process is gone. */
function removeStaleUsers(): void {
  const pattern = new RegExp(`^${USER_PREFIX}(\\d+)x[0-9a-f]+$`);
  for (const line of fs.readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const name = line.split(':')[0] ?? '';
    const m = pattern.exec(name);
    if (m && !pidAlive(Number(m[1]))) deleteUser(name);
  }
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** asctime() as in mbox "From " lines: "Mon Jan  6 09:00:00 2025". */
function asctime(d: Date): string {
  const two = (n: number) => String(n).padStart(2, '0');
  const time = `${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())}`;
  return `${DAYS[d.getUTCDay()]} ${MONTHS[d.getUTCMonth()]} ${String(d.getUTCDate()).padStart(2, ' ')} ${time} ${d.getUTCFullYear()}`;
}

let messageCounter = 0;

/**
 * One mbox entry. popa3d derives UIDL from a few headers (Message-ID among
 * them), not from the "From " line: messages without those headers share a
 * UIDL, so give test messages a unique Message-ID when UIDLs matter.
 */
function toMboxEntry(content: Buffer | string): string {
  const text = (Buffer.isBuffer(content) ? content.toString('latin1') : content).replace(/\r\n/g, '\n');
  const quoted = text.replace(/^(>*From )/gm, '>$1');
  const body = quoted.endsWith('\n') ? quoted : `${quoted}\n`;
  return `From pop3gw-test-${process.pid}-${++messageCounter}@localhost ${asctime(new Date())}\n${body}\n`;
}

export async function startPopa3d(): Promise<Popa3dInstance> {
  if (process.getuid?.() !== 0) throw new Error('startPopa3d needs root (it creates a system user and a mail spool)');
  const binary = ensurePopa3dBinary();
  ensurePopa3dSystemUser();
  removeStaleUsers();

  // Random part: worker threads share process.pid.
  const user = `${USER_PREFIX}${process.pid}x${crypto.randomBytes(3).toString('hex')}`;
  const password = `Legacy-${crypto.randomBytes(6).toString('hex')}`;
  runLocked('useradd', ['--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', user]);
  const unregisterUser = onProcessExit(() => deleteUser(user));
  runLocked('chpasswd', [], { input: `${user}:${password}\n` });

  const mboxFile = path.join('/var/mail', user);
  fs.writeFileSync(mboxFile, '', { mode: 0o600 });
  const uid = Number(run('id', ['-u', user]).trim());
  const mailGid = Number(run('getent', ['group', 'mail']).split(':')[2] ?? '0');
  fs.chownSync(mboxFile, uid, mailGid);

  const children = new Set<ChildProcess>();
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    const child = spawn(binary, [], { stdio: ['pipe', 'pipe', 'ignore'] });
    children.add(child);
    const unregister = onProcessExit(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    child.once('error', () => socket.destroy());
    child.once('exit', () => {
      children.delete(child);
      unregister();
    });
    child.stdin.on('error', () => socket.destroy());
    socket.on('error', () => child.kill('SIGTERM'));
    socket.once('close', () => {
      sockets.delete(socket);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    });
    socket.pipe(child.stdin);
    child.stdout.pipe(socket);
  });
  server.on('error', () => undefined); // listen errors surface through the promise below
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('popa3d harness: listener has no port');

  let stopped: Promise<void> | null = null;
  return {
    host: '127.0.0.1',
    port: address.port,
    user,
    password,
    mboxFile,
    addMessage(content) {
      fs.appendFileSync(mboxFile, toMboxEntry(content));
    },
    stop() {
      stopped ??= (async () => {
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          for (const socket of sockets) socket.destroy();
        });
        await Promise.all(
          [...children].map(
            (child) =>
              new Promise<void>((resolve) => {
                if (child.exitCode !== null || child.signalCode !== null) return resolve();
                child.once('exit', () => resolve());
                child.kill('SIGTERM');
              }),
          ),
        );
        unregisterUser();
        deleteUser(user);
      })();
      return stopped;
    },
  };
}
