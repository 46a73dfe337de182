"""shrink.core.allocator: with keep_freed_memory, a large block freed and allocated again is not page-faulted
in again (what the trainer gains each step; tests/test_train.py checks that train.keep_freed_memory reaches it)."""

import platform
import subprocess
import sys

import pytest

# Training steps of a BERT-size word embedding (30,522 x 384): each backward allocates a fresh 47 MB gradient,
# freed again by zero_grad. Prints the minor page faults of 20 steps after 8 (the heap settles within 6).
FAULTS = """
import resource, sys, torch
from shrink.core.allocator import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
torch.manual_seed(0)
emb = torch.nn.Embedding(30522, 384)
ids = torch.randint(0, 30522, (32, 20))
def step():
    emb(ids).sum().backward()
    emb.zero_grad(set_to_none=True)
for _ in range(8):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(mode):
    out = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, check=True).stdout
    return int(out.split()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the setting is glibc's")
def test_freed_block_is_reused_without_page_faults():
    default, kept = faults("default"), faults("keep")
    # each 47 MB gradient is 11,446 pages: glibc's default maps and faults every one of them again
    assert default > 20 * 10_000, default
    # kept: none once the heap has settled, or a few steps' worth while it still grows (3 of 20 seen)
    assert kept < default / 4, (kept, default)
