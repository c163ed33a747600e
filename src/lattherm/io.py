"""Atomic, tidy, safe input and output.

Every output is written to a temporary file in the target directory and renamed into place,
so an interrupted run never leaves a truncated result that a workflow would take as done.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

import pandas as pd
import yaml

from lattherm.errors import InputFileError, LatthermError

if TYPE_CHECKING:  # torch is imported where checkpoints are read, so stages without networks skip it
    import torch


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    The temporary is created with mode 0o666, so the kernel applies the process umask (and any
    default ACL of the directory) exactly as for a plain ``open``: group members of a shared
    results directory or Snakemake cache can read the outputs (``mkstemp`` would give 0o600).
    Temporaries of the same target left by a killed writer are removed first; one target has
    one writer, so none of them is in use.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stale = re.compile(rf"\.{re.escape(path.name)}\.\w+\.tmp")
    for old in path.parent.iterdir():
        if stale.fullmatch(old.name):
            old.unlink(missing_ok=True)
    tmp_path = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    os.close(os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


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


def table_path(path: str | os.PathLike) -> Path:
    """``path`` as a Path if it names a CSV or Parquet table (check outputs before the work)."""
    path = Path(path)
    if path.suffix not in (".csv", ".parquet"):
        raise LatthermError(f"table path {path} must end in .csv or .parquet")
    return path


def write_table(path: str | os.PathLike, df: pd.DataFrame) -> None:
    """Write a tidy table as CSV or Parquet, chosen by the file suffix."""
    path = table_path(path)
    with atomic_path(path) as tmp:
        if path.suffix == ".csv":
            df.to_csv(tmp, index=False)
        else:
            df.to_parquet(tmp, index=False)


class MissingInputError(InputFileError, FileNotFoundError):
    """An input file does not exist (also a FileNotFoundError, for callers that catch that)."""


def input_file(path: str | os.PathLike, what: str) -> Path:
    """``path`` as a Path if it is an existing regular file; else an InputFileError naming it."""
    path = Path(path)
    if not path.exists():
        raise MissingInputError(f"{what} not found: {path}")
    if not path.is_file():
        raise InputFileError(f"{what} {path} is {'a directory' if path.is_dir() else 'not a regular file'}")
    return path


def read_table(path: str | os.PathLike, columns: Iterable[str] = ()) -> pd.DataFrame:
    """Read a CSV or Parquet table that has (at least) ``columns``.

    Raises an InputFileError naming the file when it is missing, a directory, empty, not CSV or
    Parquet, unparsable or short of a column.
    """
    path = input_file(path, "table")
    if path.suffix not in (".csv", ".parquet"):
        raise InputFileError(f"table {path} must be a .csv or .parquet file")
    if path.stat().st_size == 0:
        raise InputFileError(f"table {path} is empty")
    try:
        table = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except ValueError as exc:  # pandas ParserError / EmptyDataError, UnicodeDecodeError, pyarrow's ArrowInvalid
        raise InputFileError(f"table {path} is not a readable {path.suffix[1:]} table: {exc}") from exc
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InputFileError(f"table {path} lacks column(s) {missing}; it has {list(table.columns)}")
    return table


def save_figure(fig, path: str | os.PathLike) -> None:
    """Save a matplotlib figure atomically (format from the suffix: .png, .pdf, ...)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip("."), bbox_inches="tight", dpi=150)


def load_yaml(path: str | os.PathLike, mapping: bool = False) -> Any:
    """Parse a YAML file with ``yaml.safe_load``; with ``mapping``, its top level must be a mapping
    (an empty file is refused as such, not read as None)."""
    path = input_file(path, "YAML file")
    try:
        with open(path, "rb") as fh:  # bytes: PyYAML reports undecodable text as a YAMLError
            data = yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        raise InputFileError(f"malformed YAML in {path}: {exc}") from exc
    if mapping and not isinstance(data, dict):
        found = "is empty" if data is None else f"holds a {type(data).__name__}"
        raise InputFileError(f"YAML file {path} {found}; expected a mapping of keys to values")
    return data


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
        raise CheckpointError(f"checkpoint {path} is corrupt or not a lattherm checkpoint: {_load_failure(exc)}") from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} does not hold a dict")
    return state


def _load_failure(exc: Exception) -> str:
    """torch's reason, without its paragraph (which suggests weights_only=False: never for a file
    that may run code on loading)."""
    text = " ".join(str(exc).split())
    if "WeightsUnpickler error:" in text:
        detail = text.split("WeightsUnpickler error:")[1].split("Check the documentation")[0].strip()
        return f"it holds something other than tensors and plain values ({detail}); refused without unpickling it"
    return text.split(". ")[0] or type(exc).__name__
