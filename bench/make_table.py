"""Regenerate the results table in bench/README.md from bench/results/*.json.

Each result file may carry a ``headline`` list of ``{"metric", "value", "baseline", "ratio"}``
rows under ``results``; those rows become the table.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def table() -> str:
    lines = ["| benchmark | metric | lattherm | baseline | ratio | machine | date |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for path in sorted((HERE / "results").glob("*.json")):
        data = json.loads(path.read_text())
        results = data.get("results")
        if not isinstance(results, dict):  # a record of another shape (e.g. slurm_local.json): no headline rows
            continue
        machine = data["machine"].get("cuda") or f"CPU x{data['machine'].get('cpu_count', '?')}"
        for row in results.get("headline", []):
            lines.append(
                f"| {data['benchmark']} | {row['metric']} | {_fmt(row['value'])} | {_fmt(row['baseline'])} "
                f"| {_fmt(row['ratio'])} | {machine} | {data['date'][:10]} |"
            )
    return "\n".join(lines)


def _fmt(v) -> str:
    if isinstance(v, str):
        return v
    if v is None:
        return "-"
    return f"{v:.4g}"


def main() -> None:
    readme = HERE / "README.md"
    text = readme.read_text()
    start, stop = text.index(BEGIN) + len(BEGIN), text.index(END)
    readme.write_text(text[:start] + "\n" + table() + "\n" + text[stop:])
    print(f"updated {readme}")


if __name__ == "__main__":
    main()
