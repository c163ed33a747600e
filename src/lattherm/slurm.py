"""A check, made before any job, that snakemake-executor-plugin-slurm can learn how its jobs end.

The plugin (2.8.0) polls ``sacct`` or ``squeue``. When the query fails (``sacct`` without SLURM
accounting) or no longer lists a finished job (``squeue`` after MinJobAge), it does not stop: it
keeps waiting for the job, silently and for ever. :func:`status_problem` makes the plugin's own
choice of command, runs its query once, and says which setting to change.
"""

from __future__ import annotations

import subprocess

from lattherm.errors import LatthermError

# The plugin's longest pause between two status polls (check_active_jobs' max_sleep_time), plus
# a margin for the query itself: squeue must still list a job finished just after a poll.
MAX_POLL_SECONDS = 180
MIN_JOB_AGE = MAX_POLL_SECONDS + 20


class SlurmStatusError(LatthermError):
    """SLURM job status polling cannot work with these settings on this cluster."""


def status_problem(status_command: str | None, init_seconds: int | None) -> str | None:
    """Why the plugin's status polling would hang here, naming the option to set; None if it works.
    ``status_command`` and ``init_seconds`` are the plugin's ``slurm-status-command`` and
    ``slurm-init-seconds-before-status-checks`` settings."""
    from snakemake_executor_plugin_slurm.job_status_query import (
        get_min_job_age,
        is_query_tool_available,
        query_job_status_sacct,
        query_job_status_squeue,
    )

    if status_command is None:  # the plugin's default when `sinfo` is missing
        return "SLURM's commands (sinfo, squeue, sacct) are not on PATH: run Snakemake where jobs are submitted"
    min_age = get_min_job_age()
    age = "unknown" if min_age is None else f"{min_age} s"
    init = init_seconds or 40
    # The plugin's own choice (check_active_jobs): squeue is replaced by sacct when MinJobAge is
    # short, sacct by squeue when sacct is not installed.
    command = status_command
    if command == "squeue" and (min_age is None or min_age < 3 * init) and is_query_tool_available("sacct"):
        command = "sacct"
    if command == "sacct" and not is_query_tool_available("sacct"):
        command = "squeue"
    query = query_job_status_sacct("lattherm-status-check") if command == "sacct" else \
        query_job_status_squeue("lattherm-status-check")
    try:
        done = subprocess.run(query, shell=True, capture_output=True, text=True, timeout=60)
        failure = None if done.returncode == 0 else (done.stderr.strip() or f"exit status {done.returncode}")
    except subprocess.TimeoutExpired:
        failure = "no answer within 60 s"
    if failure is not None:
        if command == "sacct" and status_command == "squeue":
            return (f"SLURM status polling cannot work: MinJobAge = {age} is under 3 x "
                    f"slurm-init-seconds-before-status-checks ({3 * init} s), so the plugin polls `sacct`, which "
                    f"fails here ({failure}); ask for MinJobAge >= {MIN_JOB_AGE} s or SLURM accounting")
        fix = ("set `slurm-status-command: squeue` in the profile (or --slurm-status-command squeue)"
               if command == "sacct" else "ask your administrators; `squeue` must work where Snakemake runs")
        return f"SLURM status polling cannot work: `{command}` fails here ({failure}); {fix}"
    if command == "squeue" and (min_age is None or min_age < MIN_JOB_AGE):
        return (f"SLURM status polling cannot work: squeue forgets a finished job after MinJobAge = {age}, "
                f"sooner than the plugin polls (up to {MAX_POLL_SECONDS} s apart); ask for MinJobAge >= "
                f"{MIN_JOB_AGE} s, or use `slurm-status-command: sacct` where SLURM accounting is set up")
    return None


def check_status_polling(workflow) -> None:
    """Raise :class:`SlurmStatusError` when a Snakemake run on the slurm executor would hang."""
    plugin = workflow.executor_plugin
    if plugin is None or plugin.name != "slurm" or workflow.dryrun:
        return
    settings = workflow.executor_settings
    problem = status_problem(settings.status_command, settings.init_seconds_before_status_checks)
    if problem is not None:
        raise SlurmStatusError(problem)
