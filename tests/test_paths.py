"""ltmpq.paths: an explicit location setting wins or fails, it never silently means something else."""

from __future__ import annotations

import re

import pytest

import ltmpq.data
from ltmpq import paths
from ltmpq.data import DataNotFoundError, find_source

#: What each setting locates, and the default its error names.
LOCATED = {
    "LTMPQ_RESULTS": (paths.results_dir, paths.ROOT / "results"),
    "LTMPQ_CACHE": (paths.cache_dir, paths.ROOT / ".cache"),
    "LTMPQ_DATA": (
        paths.data_candidates,
        f"{paths.ROOT / 'data'}, then {paths.ROOT.parent / 'shared' / 'data'}",
    ),
}
FILE = "<a file>"  # replaced by a file in tmp_path
EMPTY = "{name} is set but empty; unset it (default: {default}) or set it to a folder"
A_FILE = "{name}={value} is a file, not a folder; unset it (default: {default}) or set it to a folder"
NO_DATA = "{name} is set but empty; unset it (default: {default}) or set it to the folder that holds CIFAR-10"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("LTMPQ_RESULTS", "", EMPTY), ("LTMPQ_RESULTS", "  ", EMPTY), ("LTMPQ_RESULTS", FILE, A_FILE),
        ("LTMPQ_CACHE", "", EMPTY), ("LTMPQ_CACHE", "\t", EMPTY), ("LTMPQ_CACHE", FILE, A_FILE),
        ("LTMPQ_DATA", "", NO_DATA), ("LTMPQ_DATA", " ", NO_DATA),
    ],
    ids=["results-empty", "results-blank", "results-file", "cache-empty", "cache-blank", "cache-file",
         "data-empty", "data-blank"],
)  # fmt: skip
def test_an_empty_or_file_location_setting_is_refused(name, value, message, tmp_path, monkeypatch):
    """Probe: LTMPQ_RESULTS= (or LTMPQ_CACHE=) made the working directory the results store or the
    cache (Path("") is "."); LTMPQ_DATA= silently searched the default folders instead."""
    if value == FILE:
        value = str(tmp_path / "results.json")
        (tmp_path / "results.json").write_text("{}")
    monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)  # were "" accepted, it would be this folder, not the project
    # the real data search (conftest restricts ltmpq.data's to LTMPQ_DATA), which finds the real
    # copy in ../shared/data on the development machines when the setting is skipped
    monkeypatch.setattr(ltmpq.data, "data_candidates", paths.data_candidates)
    located, default = LOCATED[name]
    with pytest.raises(ValueError) as err:
        located()
    assert str(err.value) == message.format(name=name, value=value, default=default)
    assert "\n" not in str(err.value)
    if name == "LTMPQ_DATA":  # the data search meets the same error, before any download
        with pytest.raises(ValueError, match="^LTMPQ_DATA is set but empty"):
            find_source(allow_download=True)
    assert [p.name for p in tmp_path.iterdir()] == (["results.json"] if value.strip() else [])


def test_a_data_setting_naming_a_file_keeps_the_data_search_message(tmp_path, monkeypatch):
    """A non-empty LTMPQ_DATA is ltmpq.data's to judge: it holds no copy, and it is never skipped."""
    zipped = tmp_path / "cifar.zip"
    zipped.write_bytes(b"PK")
    monkeypatch.setenv("LTMPQ_DATA", str(zipped))
    monkeypatch.setattr(ltmpq.data, "data_candidates", paths.data_candidates)
    assert paths.data_candidates() == [zipped]
    with pytest.raises(DataNotFoundError, match=f"^LTMPQ_DATA={re.escape(str(zipped))} holds no CIFAR-10"):
        find_source(allow_download=True)
