"""The compiled adapters: a compiled copy older than its source is never loaded."""

from __future__ import annotations

import os
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest

from hub import native


def _tree(root: Path) -> list[Path]:
    # A checkout's layout with every source, then every compiled file built after them.
    for module in native.COMPILED:
        native.source(module, root).parent.mkdir(parents=True, exist_ok=True)
        native.source(module, root).write_text("")
        os.utime(native.source(module, root), (1_000, 1_000))
    built = []
    for module in (*native.COMPILED, native.GROUP + "__mypyc"):
        path = root.joinpath(*module.split("."))
        built.append(path.with_name(path.name + EXTENSION_SUFFIXES[0]))
        built[-1].write_bytes(b"")
        os.utime(built[-1], (2_000, 2_000))
    return built


def test_current_compiled_files_are_kept(tmp_path: Path) -> None:
    built = _tree(tmp_path)
    assert not native.stale(tmp_path)
    native.guard(tmp_path)
    assert sorted(native.compiled_files(tmp_path)) == sorted(built)


def test_an_edited_source_removes_every_compiled_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _tree(tmp_path)
    os.utime(native.source("hub.adapters.homie", tmp_path), (3_000, 3_000))  # edited after the build
    assert native.stale(tmp_path)
    native.guard(tmp_path)
    assert native.compiled_files(tmp_path) == []  # all, not one: an interpreted class cannot derive from a compiled one
    assert "run interpreted" in capsys.readouterr().err


def test_a_partial_build_is_not_loaded(tmp_path: Path) -> None:
    built = _tree(tmp_path)
    built[0].unlink()
    assert native.stale(tmp_path)
    native.guard(tmp_path)
    assert native.compiled_files(tmp_path) == []


def test_no_build_is_not_stale(tmp_path: Path) -> None:
    assert not native.stale(tmp_path)
