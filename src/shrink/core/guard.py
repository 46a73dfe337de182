"""Resource guard: a job that outgrows its memory or time request stops with a message naming the
rule and the config key to raise.

Run locally, nothing enforces a rule's `mem_mb` and `runtime` (config `resources.<group>`): a job
that outgrows them runs on, or dies to the kernel's OOM killer without a word, and then fails on a
cluster. So every workflow script (shrink.core.harness.run) runs its step under a daemon thread that
compares the resident memory of the job's processes (the script and everything it started: data
workers, DDP ranks) and its wall time with the request plus MARGIN. On a breach it prints e.g.

    rule train_teacher exceeded its memory request: 8312 MB used, mem_mb is 8000; raise config key resources.train.mem_mb

and stops the job: SIGUSR1 makes the main thread raise ResourceExceeded, so atomic writes remove
their temporaries, the job's child processes get SIGTERM and the script exits 1; a job still alive
GRACE seconds later is killed outright. SHRINK_GUARD=0 in the environment turns the guard off.

Under SLURM the scheduler enforces the same requests and usually kills first; `slurm_kills` finds
those jobs in the SLURM executor plugin's logs for the workflow's `onerror` handler.
"""

import contextlib
import os
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import ShrinkError

MARGIN = 0.10  # tolerated overshoot: a brief spike or measurement noise is not worth a failed job
INTERVAL = 2.0  # seconds between checks; reading /proc takes well under a millisecond per process
GRACE = 30.0  # seconds a breaching job gets to exit cleanly before it is killed
ENV = "SHRINK_GUARD_PID"  # set while a guard runs: the processes it starts are already watched


class ResourceExceeded(ShrinkError):
    """Raised in the main thread when the job went over its memory or time request."""


def _ppid(pid):
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    return int(stat[stat.rindex(b")") + 2:].split()[1])  # after "pid (comm) state"


def descendants(pid):
    """Every process started, directly or not, by `pid` (from /proc; empty where there is none)."""
    children = {}
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                with contextlib.suppress(OSError, ValueError):
                    children.setdefault(_ppid(entry.name), []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _rss_kb(pid):
    with contextlib.suppress(OSError, ValueError):
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    return 0


def job_memory_mb(pid=None):
    """Resident memory of `pid` (this process) and its descendants in MB: what a cluster's memory
    limit counts. Without /proc, the peak of this process and its finished children."""
    pid = pid or os.getpid()
    if not os.path.isdir(f"/proc/{pid}"):
        import resource

        peak = sum(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
        return peak / (1 << 20 if sys.platform == "darwin" else 1 << 10)  # bytes on macOS, KB elsewhere
    return sum(_rss_kb(p) for p in [pid, *descendants(pid)]) / 1024


def _signal_all(pids, sig):
    for p in pids:
        with contextlib.suppress(OSError):
            os.kill(p, sig)


class Guard:
    """Watches this process against a memory request (MB) and a runtime request (minutes)."""

    def __init__(self, rule, group=None, mem_mb=None, runtime=None, interval=None, grace=None, margin=None):
        self.rule, self.group, self.mem_mb, self.runtime = rule, group, mem_mb, runtime
        self.interval = INTERVAL if interval is None else interval
        self.grace = GRACE if grace is None else grace
        self.margin = MARGIN if margin is None else margin
        self.breach, self._raised = None, False
        self._t0 = time.monotonic()
        self._stop = threading.Event()
        self._thread = None
        self._signals_main = False  # SIGUSR1 handler installed: only possible from the main thread
        self._previous_handler = None

    def _fix(self, key):
        if self.group:
            return f"raise config key resources.{self.group}.{key}"
        return f"raise its {key} (config section 'resources', or --set-resources {self.rule}:{key}=...)"

    def check(self):
        """The breach message, or None while the job is within its requests."""
        if self.mem_mb:
            used = job_memory_mb()
            if used > self.mem_mb * (1 + self.margin):
                return (f"rule {self.rule} exceeded its memory request: {used:.0f} MB used, "
                        f"mem_mb is {self.mem_mb:g}; {self._fix('mem_mb')}")
        if self.runtime:
            minutes = (time.monotonic() - self._t0) / 60
            if minutes > self.runtime * (1 + self.margin):
                return (f"rule {self.rule} exceeded its time request: running for {minutes:.1f} min, "
                        f"runtime is {self.runtime:g} min; {self._fix('runtime')}")
        return None

    def start(self):
        # One check before the job starts: a request the bare interpreter already exceeds fails at
        # once, not only if the job outlives the first check of the watching thread.
        message = self.check()
        if message:
            print(message, file=sys.stderr, flush=True)
            raise ResourceExceeded(message)
        if threading.current_thread() is threading.main_thread():
            self._previous_handler = signal.signal(signal.SIGUSR1, self._on_signal)
            self._signals_main = True
        os.environ[ENV] = str(os.getpid())
        self._thread = threading.Thread(target=self._watch, name="shrink-guard", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self.breach is not None:  # the job unwinds: its workers and ranks must not outlive it
            _signal_all(descendants(os.getpid()), signal.SIGTERM)
        elif self._thread is not threading.current_thread():
            self._thread.join(self.interval + 10)  # a check in progress must not signal after this
        if self._signals_main:
            signal.signal(signal.SIGUSR1, self._previous_handler or signal.SIG_DFL)
        if os.environ.get(ENV) == str(os.getpid()):
            del os.environ[ENV]

    def _on_signal(self, signum, frame):
        # Raise once: a stray SIGUSR1 from elsewhere, or a repeat while the job unwinds, is ignored.
        if self.breach and not self._raised:
            self._raised = True
            raise ResourceExceeded(self.breach)

    def _watch(self):
        while not self._stop.is_set():
            message = self.check()
            if message and not self._stop.is_set():
                self._enforce(message)
                return
            self._stop.wait(self.interval)

    def _enforce(self, message):
        self.breach = message
        print(message, file=sys.stderr, flush=True)
        deadline = time.monotonic() + self.grace
        # Repeat the signal until it is handled: one that lands just before a blocking call (sleep,
        # join) is only seen when the call returns. The main thread usually unwinds and exits at
        # once, ending this thread with the process.
        while self._signals_main and not self._raised and time.monotonic() < deadline:
            signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)
            time.sleep(0.2)
        # Still alive (stuck in a long C call, or the exception was swallowed): kill everything.
        time.sleep(max(0.0, deadline - time.monotonic()))
        print(f"rule {self.rule} still running {self.grace:g} s after exceeding its request: killing it",
              file=sys.stderr, flush=True)
        _signal_all(descendants(os.getpid()), signal.SIGKILL)
        os._exit(1)


def _number(value):
    try:
        return float(value) if value not in (None, "", 0) else None
    except (TypeError, ValueError):
        return None


def _guarded_by_ancestor():
    """True when a guard already watches this process: it runs in an ancestor process."""
    guard_pid = os.environ.get(ENV)
    if not guard_pid or guard_pid == str(os.getpid()):
        return False
    pid = os.getppid()
    with contextlib.suppress(OSError, ValueError):
        while pid > 1:
            if str(pid) == guard_pid:
                return True
            pid = _ppid(pid)
        return False
    return str(os.getppid()) == guard_pid  # no /proc: only the parent can be checked


@contextlib.contextmanager
def watch(rule, resources, **settings):
    """Run the block under a Guard for the job's `resources` (snakemake.resources: mem_mb, runtime
    and the rule's resource_group); does nothing when there is no request to guard."""
    mem_mb = _number(getattr(resources, "mem_mb", None))
    runtime = _number(getattr(resources, "runtime", None))
    if os.environ.get("SHRINK_GUARD") == "0" or not (mem_mb or runtime) or _guarded_by_ancestor():
        yield None
        return
    g = Guard(rule, getattr(resources, "resource_group", None), mem_mb, runtime, **settings).start()
    try:
        yield g
    finally:
        g.stop()


# ---------------------------------------------------------------- jobs SLURM killed

# What slurmstepd writes into a job's output when it kills the job for its time or memory limit.
TIME_LIMIT = re.compile(r"DUE TO TIME LIMIT")
OUT_OF_MEMORY = re.compile(r"(?i:oom[-_ ]kill)|Exceeded (?:job|step) memory limit|OUT_OF_MEMORY|Out Of Memory")
TAIL_BYTES = 1 << 20  # slurmstepd's verdict comes last; a training log can be long


@dataclass
class SlurmKill:
    rule: str
    resource: str  # the request to raise: "runtime" or "mem_mb"
    jobid: str
    log: Path


def slurm_kills(logdir, since=0.0):
    """Jobs SLURM killed for their time or memory limit, from the SLURM executor plugin's logs
    (`<logdir>/rule_<rule>/[<wildcards>/]<jobid>.log`) written at or after `since` (epoch seconds)."""
    logdir, kills = Path(logdir), []
    if not logdir.is_dir():
        return kills
    for log in sorted(logdir.glob("rule_*/**/*.log")):
        try:
            if log.stat().st_mtime < since:
                continue  # an earlier run's
            with open(log, "rb") as f:
                f.seek(max(0, log.stat().st_size - TAIL_BYTES))
                text = f.read().decode("utf-8", "replace")
        except OSError:
            continue
        resource = "runtime" if TIME_LIMIT.search(text) else "mem_mb" if OUT_OF_MEMORY.search(text) else None
        if resource:
            rule = log.relative_to(logdir).parts[0].removeprefix("rule_")
            kills.append(SlurmKill(rule, resource, log.stem, log))
    return kills


def slurm_message(kill, group=None, value=None):
    """The line that tells the user which rule SLURM killed and which config key to raise."""
    what = {"runtime": "time", "mem_mb": "memory"}[kill.resource]
    request = f"{kill.resource} is {value}, " if value is not None else ""
    fix = Guard(kill.rule, group)._fix(kill.resource)
    return (f"rule {kill.rule} exceeded its {what} request and SLURM killed it ({request}SLURM job "
            f"{kill.jobid}, log {kill.log}); {fix}")


# ---------------------------------------------------------------- what failed jobs said
JOB_ERROR = re.compile(r"^ERROR in rule \S+: .*$", re.M)  # the line shrink.core.harness.run_job prints


def job_errors(folders, since=0.0):
    """The one-line errors (`ERROR in rule <rule>: ...`) of the jobs whose logs under `folders` were
    written at or after `since`, in order of the logs' times, each once. Under SLURM a job's stderr
    goes to the executor plugin's log, not to the console, so the workflow's `onerror` prints these."""
    logs = []
    for folder in map(Path, folders):
        if folder.is_dir():
            for log in folder.rglob("*.log"):
                try:
                    mtime = log.stat().st_mtime
                except OSError:
                    continue
                if mtime >= since:
                    logs.append((mtime, str(log), log))
    seen, out = set(), []
    for _, _, log in sorted(logs):
        try:
            with open(log, "rb") as f:
                f.seek(max(0, log.stat().st_size - TAIL_BYTES))
                text = f.read().decode("utf-8", "replace")
        except OSError:
            continue
        for line in JOB_ERROR.findall(text):
            if line not in seen:
                seen.add(line)
                out.append(line)
    return out
