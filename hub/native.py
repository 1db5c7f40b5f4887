"""The modules that run compiled to C (mypyc), and the rule that a compiled copy never outlives its source."""

from __future__ import annotations

import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

# The code every device message goes through (framing, parsing, merging): compiled, a message
# costs about a quarter less (bench/normalize.py prints which way the adapters ran). One group,
# so that they call each other natively; all or none, since an interpreted class cannot derive
# from a compiled one.
COMPILED = (
    "hub.adapters.base",
    "hub.adapters.common",
    "hub.adapters.homeassistant",
    "hub.adapters.homie",
    "hub.adapters.shelly",
    "hub.adapters.tasmota",
    "hub.adapters.zigbee2mqtt",
    "hub.trusted",  # the adapters build their models with it three times a discovery
    "hub.mqttframe",  # every packet from the broker is split, and every publish written, here
    "hub.registry",  # every report is merged here
    "hub.reports",  # and its StateChanged and Availability built here
)
# What keeps their per-message code native (each measured compiled, Python 3.11):
# - isinstance with a tuple, never `A | B`: the union is built at every call (190 against 5 ns);
# - enum members read per message held as Final module constants: `Kind.OTHER` goes through
#   EnumType's __getattr__ hook (190 ns), a Final name is a C static; constants Final too, or
#   each read is a lookup in the module's dict;
# - a hot dataclass writes its __init__ out: the one @dataclass generates runs interpreted.
# The shared library all of them load (GROUP + "__mypyc"). In `hub`, not `hub.adapters`: loading
# it from there would import every adapter, and the model with them, while hub.model is loading.
GROUP = "hub._native"
ROOT = Path(__file__).resolve().parent.parent


def source(module: str, root: Path = ROOT) -> Path:
    """The source file of a module of COMPILED."""
    return root.joinpath(*module.split(".")).with_suffix(".py")


def compiled_files(root: Path = ROOT) -> list[Path]:
    """Every compiled file present: the modules' and the group's shared library."""
    out = []
    for module in (*COMPILED, GROUP + "__mypyc"):
        base = root.joinpath(*module.split("."))
        out += [p for suffix in EXTENSION_SUFFIXES if (p := base.with_name(base.name + suffix)).exists()]
    return out


def stale(root: Path = ROOT) -> bool:
    """Whether compiled files are present but not all current (one missing, or older than a source)."""
    files = compiled_files(root)
    if not files:
        return False
    built = min(f.stat().st_mtime for f in files)
    return len(files) != len(COMPILED) + 1 or any(source(m, root).stat().st_mtime > built for m in COMPILED)


def guard(root: Path = ROOT) -> None:
    """Remove stale compiled files before anything imports them, so that the source runs instead."""
    if not stale(root):
        return
    try:
        for f in compiled_files(root):
            f.unlink()
    except OSError as exc:  # an installed, read-only copy: it cannot have been edited either
        sys.stderr.write(f"hub: could not remove stale compiled adapters: {exc}\n")
        return
    sys.stderr.write("hub: the adapters changed since they were compiled; they run interpreted until `make`\n")


def running_compiled() -> bool:
    """Whether the adapters were loaded compiled."""
    from hub.adapters import base  # here, not at the top: guard() runs before any adapter loads

    return not base.__file__.endswith(".py") if base.__file__ else False
