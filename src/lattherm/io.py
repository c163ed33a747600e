"""Atomic, tidy, safe input and output.

Every output is written to a temporary file in the target directory and renamed into place,
so an interrupted run never leaves a truncated result that a workflow would take as done.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import yaml

from lattherm.errors import LatthermError


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


def write_table(path: str | os.PathLike, df: pd.DataFrame) -> None:
    """Write a tidy table as CSV or Parquet, chosen by the file suffix."""
    suffix = Path(path).suffix
    if suffix not in (".csv", ".parquet"):
        raise ValueError(f"table path must end in .csv or .parquet, got {path}")
    with atomic_path(path) as tmp:
        if suffix == ".csv":
            df.to_csv(tmp, index=False)
        else:
            df.to_parquet(tmp, index=False)


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"table not found: {path}")
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


def save_figure(fig, path: str | os.PathLike) -> None:
    """Save a matplotlib figure atomically (format from the suffix: .png, .pdf, ...)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip("."), bbox_inches="tight", dpi=150)


def load_yaml(path: str | os.PathLike) -> Any:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"YAML file not found: {path}")
    with open(path) as fh:
        try:
            return yaml.safe_load(fh)
        except yaml.YAMLError as exc:
            raise ValueError(f"malformed YAML in {path}: {exc}") from exc


class CheckpointError(LatthermError):
    """A checkpoint is missing, corrupt, or belongs to another system."""


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Save a dict of tensors and plain Python values, loadable with ``weights_only=True``."""
    import torch  # here, so that stages without networks (CE fits, figures) do not load torch

    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    import torch

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for truncated/garbage files
        raise CheckpointError(f"checkpoint {path} is corrupt or not a lattherm checkpoint: {exc}") from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} does not hold a dict")
    return state
