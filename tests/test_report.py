"""The report's provenance: package versions and one runtime row per job (the rule
report_provenance writes them beside the figures; CI builds the report of the tiny run)."""

import pandas as pd

from lattherm.provenance import PACKAGES, job_runtimes, package_versions


def test_package_versions_name_python_and_every_package():
    table = package_versions()
    assert list(table.columns) == ["package", "version"]
    assert list(table.package) == ["python", "platform", *PACKAGES]
    versions = dict(zip(table.package, table.version))
    assert versions["lattherm"] != "not installed" and versions["torch"].startswith("2.")


def test_runtimes_have_one_row_per_job_and_the_benchmark_files(tmp_path):
    # a job's outputs share its hash and end; each output's start is stamped a moment apart
    records = [
        {"path": "results/ce/cuau.json", "rule": "ce_fit", "job_hash": 1, "starttime": 100.0, "endtime": 110.5},
        {"path": "results/ce/cuau/hull.png", "rule": "ce_fit", "job_hash": 1, "starttime": 100.1, "endtime": 110.5},
        {"path": "results/neural/a/checkpoint.pt", "rule": "neural_train", "job_hash": 2, "starttime": 120.0,
         "endtime": 130.0, "external_jobid": "17"},
        {"path": "results/config/x.json", "rule": "config_block", "job_hash": 3, "starttime": None, "endtime": None},
    ]
    bench = tmp_path / "transfer.tsv"
    bench.write_text("s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
                     "35.1\t0:00:35\t650.2\t1\t1\t1\t0\t0\t20\t7.48\n")
    table = job_runtimes(records, [("neural_transfer", bench)])
    assert list(table.rule) == ["ce_fit", "neural_train", "neural_transfer"]
    assert list(table.seconds) == [10.5, 10.0, 35.1]
    assert list(table.source) == ["snakemake", "snakemake", "benchmark"]
    assert table.slurm_jobid.iloc[1] == "17" and table.output.iloc[0] == "results/ce/cuau.json"
    assert table.cpu_seconds.iloc[2] == 7.48 and table.max_rss_mb.iloc[2] == 650.2
    assert pd.isna(table.cpu_seconds.iloc[0])
