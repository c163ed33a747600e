"""What a reviewer of a workflow report needs beside the figures: the config the run used, the
versions of the packages it ran with, and how long each job took (the ``report_provenance`` rule
writes them; ``snakemake --report`` shows them under "0. Provenance")."""

from __future__ import annotations

import platform
import re
import sys
from importlib import metadata
from pathlib import Path

import pandas as pd
import yaml

from lattherm.io import write_table, write_text

PACKAGES = ("lattherm", "snakemake", "snakemake-executor-plugin-slurm", "torch", "numpy", "scipy", "pandas",
            "pymbar", "icet", "ase", "matplotlib", "PyYAML")


def package_versions() -> pd.DataFrame:
    """Python, the platform, and the version of each of :data:`PACKAGES` (``not installed`` if absent)."""
    rows = [("python", sys.version.split()[0]), ("platform", platform.platform())]
    for name in PACKAGES:
        try:
            rows.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            rows.append((name, "not installed"))
    return pd.DataFrame(rows, columns=["package", "version"])


def job_runtimes(records: list[dict], benchmarks: list[tuple[str, Path]]) -> pd.DataFrame:
    """One row per job. ``records``: Snakemake's metadata of each output (path, rule, starttime,
    endtime, external_jobid); a job's outputs share its times, and its row names the first. On a
    cluster the span runs from submission to the status poll that saw the job end. Then one row
    per benchmark file, ``benchmarks``: (rule, path) of rules with a ``benchmark:`` (cached rules
    may not have one), with the job's own wall time, CPU time and peak memory."""
    jobs: dict[tuple, dict] = {}
    for r in sorted(records, key=lambda r: r["path"]):
        if r.get("starttime") is None or r.get("endtime") is None:
            continue
        # a job's outputs share its hash and end; each output's start is stamped a moment apart
        job = jobs.setdefault((r["rule"], r.get("job_hash"), r["endtime"]), {
            "rule": r["rule"], "output": r["path"], "start": r["starttime"], "end": r["endtime"],
            "source": "snakemake", "slurm_jobid": r.get("external_jobid"),
        })
        job["start"] = min(job["start"], r["starttime"])
    for job in jobs.values():
        job["seconds"] = round(job.pop("end") - job.pop("start"), 3)
    rows = sorted(jobs.values(), key=lambda row: (row["rule"], row["output"]))
    for rule, path in sorted(benchmarks):
        bench = pd.read_csv(path, sep="\t").iloc[-1]
        rows.append({"rule": rule, "output": str(path), "seconds": float(bench["s"]), "source": "benchmark",
                     "cpu_seconds": float(bench["cpu_time"]), "max_rss_mb": float(bench["max_rss"])})
    columns = ["rule", "output", "seconds", "source", "slurm_jobid", "cpu_seconds", "max_rss_mb"]
    return pd.DataFrame(rows, columns=columns)


def write_config(path, config: dict) -> None:
    """The config as the run saw it (after --configfile, --config and the schema's defaults)."""
    write_text(path, yaml.safe_dump(dict(config), sort_keys=False))


def write_versions(path) -> None:
    write_table(Path(path), package_versions())


def write_runtimes(path, records: list[dict], benchmarks: list[tuple[str, Path]]) -> None:
    write_table(Path(path), job_runtimes(records, benchmarks))


def write_provenance(output, config: dict, workflow) -> None:
    """The ``report_provenance`` rule: ``output.config``, ``output.versions`` and
    ``output.runtimes`` from the run's config and Snakemake's records (``workflow.persistence``:
    every file under results/ but the report's own; benchmark files under benchmarks/)."""
    from snakemake.io import IOFile, regex_from_filepattern

    write_config(output.config, config)
    write_versions(output.versions)
    records = []
    for path in sorted(p for p in Path("results").rglob("*") if p.is_file() and p.parts[1] != "report"):
        record = workflow.persistence.metadata(IOFile(str(path)))
        if record is not None:
            records.append({"path": str(path), **record.model_dump()})
    patterns = [(r.name, re.compile(regex_from_filepattern(str(r.benchmark)))) for r in workflow.rules if r.benchmark]
    benchmarks = [(name, path) for path in sorted(Path("benchmarks").rglob("*.tsv"))
                  for name, pattern in patterns if pattern.match(str(path))]
    write_runtimes(output.runtimes, records, benchmarks)
