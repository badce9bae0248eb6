/**
 * What /proc tells about a process we started: CPU time (utime + stime), RSS,
 * open file descriptors, and the CPU time of a whole process tree (Dovecot's
 * master plus its login, auth and per-session pop3 processes). Linux only.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';

function clockTicks(): number {
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isFinite(n) && n > 0 ? n : 100;
  } catch (err) {
    process.stderr.write(`getconf CLK_TCK failed (${(err as Error).message}); assuming 100\n`);
    return 100;
  }
}

export const CLK_TCK = clockTicks();

interface StatFields {
  pid: number;
  comm: string;
  state: string;
  ppid: number;
  /** utime + stime of the process itself, in ticks. */
  own: number;
  /** cutime + cstime: children that exited and were waited for, in ticks. */
  children: number;
}

/** Fields of /proc/<pid>/stat after the command name, which may hold spaces and parentheses. */
function readStat(pid: number): StatFields | null {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null; // the process is gone (or never was): callers treat it as absent
  }
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state): ppid is field 4, utime 14, stime 15, cutime 16, cstime 17.
  const field = (n: number): number => Number(rest[n - 3] ?? 0);
  const comm = text.slice(text.indexOf('(') + 1, text.lastIndexOf(')'));
  return { pid, comm, state: rest[0] ?? '?', ppid: field(4), own: field(14) + field(15), children: field(16) + field(17) };
}

/** CPU seconds (user + system) the process has used so far. */
export function cpuSeconds(pid: number): number {
  return preciseCpuSeconds(pid) ?? tickCpuSeconds(pid);
}

function tickCpuSeconds(pid: number): number {
  const s = readStat(pid);
  if (s === null) throw new Error(`process ${pid} is gone; cannot read its CPU time`);
  return s.own / CLK_TCK;
}

/**
 * The same in nanoseconds: the sum of each thread's time on a CPU (/proc/PID/task/TID/schedstat),
 * where /proc/PID/stat counts in 10 ms ticks (a 0.3 s window would be read to ±3 %). The proxies'
 * threads live as long as the process, so none takes its time with it between two readings.
 * null where the kernel keeps no schedstat.
 */
function preciseCpuSeconds(pid: number): number | null {
  let tids: string[];
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return null;
  }
  let ns = 0;
  for (const tid of tids) {
    try {
      ns += Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // a thread that just ended
      return null;
    }
  }
  return Number.isFinite(ns) ? ns / 1e9 : null;
}

/**
 * CPU seconds of a process tree: every live descendant's own time plus the
 * reaped children's time each parent carries. A delta between two readings is
 * what the tree used in between, including processes that came and went.
 */
export function treeCpuSeconds(rootPid: number): number {
  let ticks = 0;
  for (const s of processTree(rootPid)) ticks += s.own + s.children;
  return ticks / CLK_TCK;
}

/** A process and all its live descendants: pid, command name, state letter. */
export function treeProcesses(rootPid: number): Array<{ pid: number; comm: string; state: string }> {
  return processTree(rootPid).map((s) => ({ pid: s.pid, comm: s.comm, state: s.state }));
}

function processTree(rootPid: number): StatFields[] {
  const all = new Map<number, StatFields>();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const s = readStat(Number(name));
    if (s !== null) all.set(Number(name), s);
  }
  const kids = new Map<number, number[]>();
  for (const [pid, s] of all) {
    const list = kids.get(s.ppid) ?? [];
    list.push(pid);
    kids.set(s.ppid, list);
  }
  const out: StatFields[] = [];
  const stack = [rootPid];
  while (stack.length > 0) {
    const pid = stack.pop()!;
    const s = all.get(pid);
    if (s === undefined) continue;
    out.push(s);
    stack.push(...(kids.get(pid) ?? []));
  }
  return out;
}

function statusField(pid: number, key: string): number {
  const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text);
  if (m === null) throw new Error(`/proc/${pid}/status has no ${key}`);
  return Number(m[1]);
}

/** Resident set size in KiB. */
export function rssKiB(pid: number): number {
  return statusField(pid, 'VmRSS');
}

/** Proportional set size in KiB (/proc/PID/smaps_rollup): shared pages split among their users; null if unreadable. */
export function pssKiB(pid: number): number | null {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m === null ? null : Number(m[1]);
  } catch {
    return null;
  }
}

/** Open file descriptors of the process. */
export function fdCount(pid: number): number {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

/** Samples RSS every `everyMs` and keeps the peak; stop() returns it in KiB. */
export class RssSampler {
  private peak = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly pid: number, everyMs = 50) {
    this.sample();
    this.timer = setInterval(() => this.sample(), everyMs);
  }

  private sample(): void {
    try {
      this.peak = Math.max(this.peak, rssKiB(this.pid));
    } catch (err) {
      process.stderr.write(`rss sample of ${this.pid} failed: ${(err as Error).message}\n`);
    }
  }

  stop(): number {
    clearInterval(this.timer);
    this.sample();
    return this.peak;
  }
}

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  node: string;
  kernel: string;
  clockTicks: number;
}

export function machineInfo(): MachineInfo {
  const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? os.cpus()[0]?.model ?? 'unknown';
  return {
    cpuModel: model.trim(),
    cores: os.availableParallelism(),
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    kernel: os.release(),
    clockTicks: CLK_TCK,
  };
}

/** CPU seconds the whole machine has spent busy (all cores; not idle, not iowait). */
export function machineBusySeconds(): number {
  const first = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const [, user, nice, system, , , irq, softirq, steal] = first.trim().split(/\s+/).map(Number);
  return ((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)) / CLK_TCK;
}

export interface CpuUse {
  wallS: number;
  /** CPU seconds of the gateway (null when not measured), Dovecot's tree, and this process (all threads). */
  gatewayS: number | null;
  dovecotS: number;
  benchS: number;
  /** CPU seconds of everything else on the machine: other people's work disturbs the figures. */
  othersS: number;
}

/** CPU used between construction and end(): ours, Dovecot's, the gateway's, and everyone else's. */
export class CpuWindow {
  private readonly t0 = performance.now();
  private readonly gw0: number;
  private readonly dc0: number;
  private readonly self0 = process.cpuUsage();
  private readonly busy0 = machineBusySeconds();

  constructor(private readonly gatewayPid: number | null, private readonly dovecotPid: number) {
    this.gw0 = gatewayPid === null ? 0 : cpuSeconds(gatewayPid);
    this.dc0 = treeCpuSeconds(dovecotPid);
  }

  end(): CpuUse {
    const gatewayS = this.gatewayPid === null ? null : cpuSeconds(this.gatewayPid) - this.gw0;
    const dovecotS = treeCpuSeconds(this.dovecotPid) - this.dc0;
    const self = process.cpuUsage(this.self0);
    const benchS = (self.user + self.system) / 1e6;
    const busyS = machineBusySeconds() - this.busy0;
    return {
      wallS: (performance.now() - this.t0) / 1000,
      gatewayS,
      dovecotS,
      benchS,
      othersS: Math.max(0, busyS - (gatewayS ?? 0) - dovecotS - benchS),
    };
  }
}

/** The 1-minute load average. */
export function loadAverage(): number {
  return os.loadavg()[0] ?? 0;
}
