"""Atomic outputs: permissions from the umask, no stray temporaries, old results kept on failure."""

import os
import stat

import pandas as pd
import pytest

from lattherm.io import atomic_path, write_table, write_text


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_outputs_honour_the_umask(tmp_path, umask, mode):
    """Group members of a shared results directory or Snakemake cache can read what the umask allows."""
    previous = os.umask(umask)
    try:
        write_text(tmp_path / "a.txt", "x")
        write_table(tmp_path / "t.csv", pd.DataFrame({"x": [1]}))
        write_table(tmp_path / "t.parquet", pd.DataFrame({"x": [1]}))
    finally:
        os.umask(previous)
    for name in ("a.txt", "t.csv", "t.parquet"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name


def test_stale_temporaries_of_the_target_are_removed(tmp_path):
    """A writer killed mid-write left a temporary; the next write of that target removes it, and
    only it (``out.csv.bak`` is another target, with its own writer)."""
    stale = [tmp_path / ".out.csv.k2j4x9q1.tmp", tmp_path / ".out.csv.0123456789abcdef.tmp"]
    others = [tmp_path / ".out.csv.bak.k2j4x9q1.tmp", tmp_path / ".other.csv.k2j4x9q1.tmp", tmp_path / "out.csv.tmp"]
    for path in stale + others:
        path.write_text("partial")
    write_text(tmp_path / "out.csv", "done")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out.csv"] + [p.name for p in others])


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "result.csv"
    write_text(target, "old")
    with pytest.raises(RuntimeError, match="killed"):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["result.csv"]
