"""Data-parallel training in several processes (config key `train.processes`) with PyTorch DDP.

The workflow script launches the workers (`launch`); each builds the same model from the same seed,
takes its shard of every global batch (`shard`) and scales its loss terms so that DDP's average of
the gradients is the gradient of the whole global batch's loss (`global_mean`): N processes take the
optimizer steps one process takes, on the same examples, up to float rounding. Rank 0 alone
validates and writes checkpoints, logs and the model; the others wait at a barrier.

With one process every helper here is a no-op and nothing is launched.
"""

import contextlib
import datetime

import torch
import torch.distributed as dist

from .errors import ConfigError, ShrinkError

# This process's place in the job; `launch` sets it in each worker.
_state = {"rank": 0, "world": 1, "threads": 1, "device": "cpu", "live": True}
# Rank 0 validates and writes while the others wait at a barrier: far longer than any collective
# takes, so the default timeout (10 min with NCCL) could cut a long validation short.
TIMEOUT = datetime.timedelta(hours=2)


def check_processes(n):
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError("train.processes", f"must be a whole number of processes, at least 1, not {n!r}")
    return n


def rank():
    return _state["rank"]


def world():
    return _state["world"]


def is_main():
    return _state["rank"] == 0


def launch(fn, kwargs, processes=1, threads=1, cuda=False):
    """Run `fn(**kwargs)` in `processes` processes, or here when there is one.

    torch.multiprocessing.spawn starts the workers: they run on this machine only (a SLURM job's
    one step), so a rendezvous on localhost is all they need (torchrun's elastic agent would add
    restarts and multi-node rendezvous, which Snakemake's retries and one node make moot), and spawn
    (not fork) gives each a fresh interpreter, which CUDA requires and which inherits no half-held
    locks of this process's threads. The port is free by construction: this process's TCPStore binds
    port 0 and serves the rendezvous, so no other program can take it between choosing and using it.
    Spawned workers import the main script again, so its top level must be guarded by
    `if __name__ == "__main__"`. `threads` is the job's total; each worker gets its share.
    """
    check_processes(processes)
    if processes == 1:
        torch.set_num_threads(max(1, threads))
        return fn(**kwargs)
    if cuda and torch.cuda.device_count() < processes:
        raise ConfigError("train.processes", f"{processes} processes on cuda need one GPU each, "
                          f"{torch.cuda.device_count()} visible")
    store = dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)
    errors = torch.multiprocessing.get_context("spawn").SimpleQueue()
    try:
        torch.multiprocessing.spawn(_worker, (processes, store.port, threads, cuda, errors, fn, kwargs),
                                    nprocs=processes)
    except (torch.multiprocessing.ProcessRaisedException, torch.multiprocessing.ProcessExitedException):
        if not errors.empty():  # a worker's bad input or NaN loss: its one-line message, not a traceback
            raise ShrinkError(errors.get()) from None
        raise


def _worker(rank, world, port, threads, cuda, errors, fn, kwargs):
    _state.update(rank=rank, world=world, threads=threads, device="cuda" if cuda else "cpu")
    torch.set_num_threads(max(1, threads // world))
    if cuda:
        torch.cuda.set_device(rank)  # one GPU per process; "cuda" then means this one
    store = dist.TCPStore("127.0.0.1", port, is_master=False, timeout=TIMEOUT)
    dist.init_process_group("nccl" if cuda else "gloo", store=store, rank=rank, world_size=world, timeout=TIMEOUT)
    try:
        fn(**kwargs)
    except ShrinkError as e:
        errors.put(str(e))
        raise
    dist.destroy_process_group()


def wrap(module):
    """`module` under DDP when there are several processes (parameters, optimizer and checkpoints stay
    with `module`; only the forward pass goes through the wrapper)."""
    if world() == 1:
        return module
    return torch.nn.parallel.DistributedDataParallel(module)


def shard(indices):
    """This rank's part of a global batch, and whether it counts.

    Every N-th sentence from this rank's index: batches are sorted by length, so the shards pad to
    about the same length. A rank left without a sentence (a batch smaller than the number of
    processes) takes the first one and counts for nothing (`global_mean` gives it weight 0), because
    DDP needs every rank in every backward pass.
    """
    if world() == 1:
        return indices, True
    part = indices[rank()::world()]
    _state["live"] = bool(part)
    return (part, True) if part else (indices[:1], False)


def global_mean(mean, count):
    """This rank's term of a mean over the whole global batch, from the mean over its shard's `count`
    items (labelled tokens, real tokens, ...).

    DDP averages gradients over the N ranks, so each rank contributes mean * count * N / (total count):
    the terms average to the mean one process computes over the global batch, however the items fall
    into shards (the shards' own means, averaged, would weight a shard of few tokens like a full one).
    """
    if world() == 1:
        return mean
    count = count.detach().float() * _state["live"]
    total = count.clone()
    dist.all_reduce(total)
    return mean * (count * world() / total)


def average(values):
    """Floats: each of `values` (scalars, `global_mean` terms) averaged over ranks, i.e. the global batch's value."""
    if world() == 1:
        return [float(v) for v in values]
    t = torch.stack([torch.as_tensor(v, dtype=torch.float32).to(_state["device"]) for v in values])
    dist.all_reduce(t)
    return (t / world()).tolist()


def total(n):
    """An integer summed over ranks."""
    if world() == 1:
        return n
    t = torch.tensor(n, dtype=torch.int64, device=_state["device"])
    dist.all_reduce(t)
    return int(t)


def broadcast(obj):
    """Rank 0's `obj`, on every rank."""
    if world() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(obj):
    """The list of every rank's `obj`, on every rank; None with one process."""
    if world() == 1:
        return None
    out = [None] * world()
    dist.all_gather_object(out, obj)
    return out


def barrier():
    if world() > 1:
        dist.barrier()


@contextlib.contextmanager
def all_threads():
    """Rank 0 validates alone while the others wait at a barrier: let it use all the job's threads."""
    if world() == 1:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, _state["threads"]))
    try:
        yield
    finally:
        torch.set_num_threads(before)
