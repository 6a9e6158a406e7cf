import * as fs from "node:fs";

/**
 * What Linux's /proc says about a process, for the harness (which children a
 * postmaster has, whether a pid is gone) and the benchmarks (CPU and memory of
 * a server). Every function answers "nothing" for a process that is gone.
 */

/** The fields of /proc/PID/stat after "pid (comm)": [0] state, [1] ppid, [11] utime, [12] stime, ... */
export function procStat(pid: number): string[] | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    // comm may contain spaces and parentheses: the fields start after the last ")".
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

/** Pids whose parent is `ppid`. */
export function childPids(ppid: number): number[] {
  let entries: string[];
  try {
    entries = fs.readdirSync("/proc");
  } catch {
    return [];
  }
  return entries.filter((e) => /^\d+$/.test(e) && Number(procStat(Number(e))?.[1]) === ppid).map(Number);
}

/** True while `pid` exists and is not a zombie (a zombie holds no shared memory). */
/** Every process below `pid`: its children, their children, and so on. */
export function descendantPids(pid: number): number[] {
  const out: number[] = [];
  for (const c of childPids(pid)) out.push(c, ...descendantPids(c));
  return out;
}

export function pidAlive(pid: number): boolean {
  const state = procStat(pid)?.[0];
  return state !== undefined && state !== "Z";
}

/** utime + stime of a process and its threads, plus its reaped children's when asked, in seconds (0 when gone). */
export function cpuSeconds(pid: number, withReapedChildren = false): number {
  const f = procStat(pid);
  if (!f) return 0;
  const ticks = Number(f[11]) + Number(f[12]) + (withReapedChildren ? Number(f[13]) + Number(f[14]) : 0);
  return ticks / 100;
}

/** Resident set size in MiB (VmRSS), or undefined when the process is gone. */
export function rssMiB(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** kill(2) that ignores a process already gone. */
export function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/** Open sockets of a process (its /proc/PID/fd links to "socket:[...]"), or 0 when it is gone. */
export function socketCount(pid: number): number {
  let fds: string[];
  try {
    fds = fs.readdirSync(`/proc/${pid}/fd`);
  } catch {
    return 0;
  }
  let n = 0;
  for (const fd of fds) {
    try {
      if (fs.readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith("socket:")) n++;
    } catch {
      // closed meanwhile
    }
  }
  return n;
}
