"""The hub process's garbage collector settings (run in a child: freezing is for the whole process)."""

from __future__ import annotations

import subprocess
import sys

CHILD = """
import gc, weakref
from hub import heap

class Node:
    pass

a, b = Node(), Node()
a.other, b.other = b, a  # a cycle: only the collector frees it
gone = weakref.ref(a)
del a, b
heap.tune()
print(gc.get_threshold() == heap.THRESHOLDS, gc.get_freeze_count() > 0, gone() is None)
"""


def test_tune_collects_less_often_and_never_freezes_garbage() -> None:
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.split() == ["True", "True", "True"]
