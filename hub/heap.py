"""How the hub process's garbage collector runs: rarely, and never over what start-up loaded."""

from __future__ import annotations

import gc

# Python collects its youngest objects after every 700 allocations by default, and now and then
# walks every object it tracks. A burst of device messages makes 700 objects in well under a
# millisecond, and a home of thousands of devices is hundreds of thousands of objects to walk:
# bench/normalize.py measured a fifth of a discovery config's cost in collections. Nearly all the
# hub's garbage is freed by reference counting anyway; the collector only finds cycles.
THRESHOLDS = (50_000, 20, 100)


def tune() -> None:
    """Collect less often, and set aside everything loaded so far (modules, config) for good."""
    gc.set_threshold(*THRESHOLDS)
    settle()


def settle() -> None:
    """Set aside what is loaded now (restored devices, rules): later collections skip it."""
    gc.collect()  # first: whatever is frozen is never collected, garbage cycles included
    gc.freeze()
