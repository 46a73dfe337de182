"""The job harness: how every rule of every task reaches its code.

Each task has one workflow script, `workflow/scripts/<task>.py`, which calls `run_job(snakemake, task)`.
That looks up the rule's job in `shrink.<task>.jobs.JOBS` (a rule missing there fails naming the rule),
copies the job's output to its log file, watches its memory and time request (shrink.core.guard), and
turns bad input, a full disk or an exceeded request into a one-line error instead of a traceback.

The job's stderr is Snakemake's console (with the local executor), so its one-line `ERROR in rule <rule>:
<message>` is printed there, just above Snakemake's own "Error in rule" block, whose `message:` line is
the rule's `message:` directive (None here), not the job's error. The package's own warnings
(shrink.ner.cleaning.DataWarning) are printed as one `WARNING in rule <rule>: <message>` line each.
"""

import contextlib
import functools
import importlib
import os
import sys
import traceback
import warnings

from . import guard
from .atomic import storage_fault
from .errors import ShrinkError, StorageError


class _Tee:
    def __init__(self, *streams):
        self.streams = streams

    def write(self, s):
        for st in self.streams:
            st.write(s)
            st.flush()

    def flush(self):
        for st in self.streams:
            st.flush()

    def isatty(self):
        return False


@contextlib.contextmanager
def _logged(smk):
    """Copy stdout and stderr to the rule's log file while still showing them on the terminal."""
    if not smk.log:
        yield
        return
    try:
        # emptied, then appended to: a training worker (train.processes > 1) appends to the same file,
        # and writes at this process's own offset would overwrite its lines
        log = open(smk.log[0], "a", encoding="utf-8")
        log.truncate(0)
    except OSError as e:  # e.g. a read-only or full results folder: say so, not a traceback
        raise storage_fault(e, smk.log[0]) or e
    with log:
        out, err = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = _Tee(out, log), _Tee(err, log)
        try:
            yield
        finally:
            sys.stdout, sys.stderr = out, err


def run(step, smk):
    """Run a step; bad input, a full or read-only disk, or a job outgrowing its memory or time
    request (shrink.core.guard) ends the job with a one-line message instead of a traceback."""
    try:
        with _logged(smk), _one_line_warnings(smk.rule):
            _run_guarded(step, smk)
    except StorageError as e:  # the log file itself could not be written
        _fail(smk, e)


@contextlib.contextmanager
def _one_line_warnings(rule):
    """Warnings of the shrink package as `WARNING in rule <rule>: <message>`, others as Python shows them."""
    plain = warnings.formatwarning

    def fmt(message, category, filename, lineno, line=None):
        if category.__module__.startswith("shrink."):
            return f"WARNING in rule {rule}: {message}\n"
        return plain(message, category, filename, lineno, line)

    warnings.formatwarning = fmt
    try:
        yield
    finally:
        warnings.formatwarning = plain


def _run_guarded(step, smk):
    try:
        with guard.watch(smk.rule, getattr(smk, "resources", None)):
            step(smk)
    except guard.ResourceExceeded:
        sys.exit(1)  # the guard has printed which request to raise
    except ShrinkError as e:
        _fail(smk, e)
    except Exception:
        traceback.print_exc()
        raise


def _fail(smk, error):
    print(f"ERROR in rule {smk.rule}: {error}", file=sys.stderr)
    sys.exit(1)


def set_threads(smk):
    """torch's intra-op threads: the rule's `threads`."""
    import torch

    torch.set_num_threads(max(1, smk.threads))


def job_of(smk, task):
    """The function that runs `smk.rule` of `task` (shrink.<task>.jobs.JOBS)."""
    jobs = importlib.import_module(f"shrink.{task}.jobs").JOBS
    if smk.rule not in jobs:
        raise ShrinkError(f"rule {smk.rule!r} has no job in shrink.{task}.jobs.JOBS "
                          f"(known: {', '.join(sorted(jobs))})")
    return jobs[smk.rule]


def run_job(smk, task):
    """Run the rule's job of `task` under the harness (the one entry point of every workflow script)."""
    try:
        job = job_of(smk, task)
    except ShrinkError as e:
        _fail(smk, e)
    run(job, smk)


def launch_job(smk, fn, processes=1, cuda=False, **kwargs):
    """Run `fn(**kwargs)` here, or in `processes` data-parallel worker processes (shrink.core.distributed),
    which get plain values: the snakemake object stays here."""
    from .distributed import launch

    if processes != 1 and smk.log:
        fn = functools.partial(_worker_output, fn, str(smk.log[0]))
    launch(fn, kwargs, processes, smk.threads, cuda=cuda)


def _worker_output(fn, log, **kwargs):
    """A training worker's output: rank 0 copies it to the rule's log as `_logged` does here (a spawned
    process starts without this process's tee); the others hold the same state and stay quiet."""
    from .distributed import is_main

    if not is_main():
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
            return fn(**kwargs)
    with open(log, "a", encoding="utf-8") as f:
        out, err = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = _Tee(out, f), _Tee(err, f)
        try:
            return fn(**kwargs)
        finally:
            sys.stdout, sys.stderr = out, err
