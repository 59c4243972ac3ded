"""ltmpq.io: atomic writes (a reader never sees half a file) and strict JSON."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from ltmpq import io
from ltmpq.io import atomic_write, write_json


def test_atomic_write_leaves_no_file_when_writer_raises(tmp_path):
    target = tmp_path / "sub" / "out.json"

    def failing(tmp):
        tmp.write_text("half")
        raise RuntimeError("writer failed")

    with pytest.raises(RuntimeError, match="writer failed"):
        atomic_write(target, failing)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []  # no temporary file left behind either


def test_atomic_write_keeps_old_content_on_failure_and_replaces_on_success(tmp_path):
    target = tmp_path / "w" / "out.txt"
    atomic_write(target, lambda tmp: tmp.write_text("v1"))
    assert target.read_text() == "v1"

    def interrupted(tmp):
        tmp.write_text("v2-partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, interrupted)
    assert target.read_text() == "v1"
    atomic_write(target, lambda tmp: tmp.write_text("v2"))
    assert target.read_text() == "v2"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]


def test_write_json_sorted_and_readable(tmp_path):
    write_json(tmp_path / "a.json", {"b": 1, "a": [1.5, None]})
    text = (tmp_path / "a.json").read_text()
    assert json.loads(text) == {"a": [1.5, None], "b": 1}
    assert text.index('"a"') < text.index('"b"') and text.endswith("\n")


def test_the_leftover_of_a_writer_killed_mid_write_is_cleaned_by_the_next_write(tmp_path):
    """Probe: the orphan .checkpoint.pt.*.tmp of a SIGKILL during a write was never cleaned up."""
    target = tmp_path / "checkpoint.pt"
    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from ltmpq.io import atomic_write\n"
        "def write(tmp):\n"
        "    tmp.write_bytes(b'half a checkpoint')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)  # killed mid-write: no cleanup runs\n"
        "atomic_write(Path(sys.argv[1]), write)\n"
    )  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", script, str(target)], capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    (orphan,) = tmp_path.glob(".checkpoint.pt.*.tmp")
    assert not target.exists()
    old = time.time() - io.ORPHAN_AGE_S - 1
    os.utime(orphan, (old, old))
    fresh = tmp_path / ".checkpoint.pt.writer-still-at-work.tmp"
    fresh.write_bytes(b"")
    io.atomic_write(target, lambda tmp: tmp.write_bytes(b"a whole checkpoint"))
    assert target.read_bytes() == b"a whole checkpoint"
    assert not orphan.exists() and fresh.exists()  # a recent one may be another writer's
