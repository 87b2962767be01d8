"""Run ``airflow dags test`` against a sandbox, in a throw-away ``AIRFLOW_HOME`` with SQLite.

Used by ``make demo``, by the end-to-end tests, and by anyone developing a DAG locally::

    python -m capillary_provider.sandbox.dag_test capillary_coupon_upload
    python -m capillary_provider.sandbox.dag_test my_dag --dags-folder path/to/dags

starts a sandbox, points the ``capillary_default`` connection at it, runs the DAG once with the real
Airflow (scheduler-less, triggers run inline) and prints the jobs the sandbox received. Without
``--dags-folder`` it runs the example DAGs installed with the package (``EXAMPLE_DAGS_FOLDER``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from capillary_provider.sandbox.testing import SandboxClient

EXAMPLE_DAGS_FOLDER = Path(__file__).resolve().parent.parent / "example_dags"
"""The example DAGs shipped in the package (in a source checkout: a link to ``example_dags/``)."""


def connection_json(sandbox: SandboxClient, **extra: Any) -> str:
    """The ``AIRFLOW_CONN_...`` JSON of a Capillary connection to ``sandbox``."""
    return json.dumps(
        {
            "conn_type": "capillary",
            "host": sandbox.url,
            "login": sandbox.key,
            "password": sandbox.secret,
            "extra": {"coupon_host": sandbox.url, **extra},
        }
    )


def airflow_env(airflow_home: Path, dags_folder: Path, sandbox: SandboxClient, **overrides: str) -> dict[str, str]:
    """Environment for an Airflow CLI that uses ``airflow_home``, ``dags_folder`` and the sandbox connection."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    env.update(
        {
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW_CONN_CAPILLARY_DEFAULT": connection_json(sandbox),
        }
    )
    env.update(overrides)
    return env


def migrate(env: dict[str, str]) -> None:
    """Create the metadata database (SQLite) of a fresh ``AIRFLOW_HOME``."""
    subprocess.run([_airflow(), "db", "migrate"], env=env, check=True, capture_output=True, text=True)


def dags_test(
    dag_id: str,
    env: dict[str, str],
    *,
    conf: dict[str, Any] | None = None,
    timeout: float = 900.0,
) -> subprocess.CompletedProcess[str]:
    """Run ``airflow dags test`` once and return the finished process (its output holds the task logs)."""
    command = [_airflow(), "dags", "test", dag_id]
    if conf:
        command += ["--conf", json.dumps(conf)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


def _airflow() -> str:
    """The ``airflow`` executable of the running interpreter's environment."""
    candidate = Path(sys.executable).with_name("airflow")
    return str(candidate) if candidate.exists() else "airflow"


def _tail(text: str, limit: int = 20000) -> str:
    """The last whole lines of ``text`` within ``limit`` characters, saying how many earlier lines are left out."""
    if len(text) <= limit:
        return text if not text or text.endswith("\n") else text + "\n"
    kept = text[-limit:].split("\n", 1)[1]
    skipped = text[: len(text) - len(kept)].count("\n")
    return (
        f"[... {skipped} earlier lines of Airflow's log left out ...]\n" + kept + ("" if kept.endswith("\n") else "\n")
    )


def _status(job: dict[str, Any]) -> str:
    """A coupon job's ``uploadStatus`` or a redeemed job's ``uploadRedeemedCouponStatus``."""
    return str(job.get("uploadStatus") or job.get("uploadRedeemedCouponStatus"))


def main(argv: list[str] | None = None) -> int:
    from capillary_provider.sandbox.testing import running_sandbox

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dag_id")
    parser.add_argument(
        "--dags-folder",
        type=Path,
        default=EXAMPLE_DAGS_FOLDER,
        help="folder holding the DAG's file (default: the example DAGs installed with the package)",
    )
    parser.add_argument("--conf", type=json.loads, default=None, help="DAG run conf, as JSON")
    parser.add_argument("--step-seconds", type=float, default=1.0, help="sandbox: seconds per job state")
    args = parser.parse_args(argv)
    dags_folder = args.dags_folder.resolve()
    if not dags_folder.is_dir():
        print(f"--dags-folder {args.dags_folder}: no such folder; pass the folder holding your DAG", file=sys.stderr)
        return 2

    with running_sandbox(step_seconds=args.step_seconds) as sandbox, tempfile.TemporaryDirectory() as home:
        print(f"Sandbox: {sandbox.url}   AIRFLOW_HOME: {home}", flush=True)
        env = airflow_env(Path(home), dags_folder, sandbox)
        migrate(env)
        result = dags_test(args.dag_id, env, conf=args.conf)
        # Airflow's log first, whole lines only, all on stdout and flushed: the jobs table below is never cut
        # or interleaved with it (stderr and stdout are buffered apart when both go to one terminal or pipe).
        sys.stdout.write(_tail(result.stdout) + _tail(result.stderr))
        sys.stdout.flush()
        if result.returncode != 0 and "could not be found" in result.stdout + result.stderr:
            print(
                f"\nNo DAG {args.dag_id!r} in {dags_folder} (or its file failed to parse): pass --dags-folder with "
                f"the folder holding its file. The example DAGs are in {EXAMPLE_DAGS_FOLDER}.",
                file=sys.stderr,
            )
            return 1
        jobs = sandbox.jobs(kind="all")
        columns = f"{'job':>6} {'kind':<8} {'series':>8} {'status':<10} {'rows':>8} {'accepted':>9} {'rejected':>9}"
        print(f"\n{columns}  file")
        for job in jobs:
            print(
                f"{job['jobId']:>6} {job['kind']:<8} {job.get('couponSeriesId', ''):>8} {_status(job):<10} "
                f"{job['actualRowCount']:>8} {job['totalUploadedCount']:>9} {job['errorCount']:>9}  "
                f"{job['uploadedFileName']}"
            )
        finished = bool(jobs) and all(_status(job) in {"FINISHED", "COMPLETED"} for job in jobs)
        print(f"\n`airflow dags test {args.dag_id}` exited {result.returncode}; jobs finished: {finished}", flush=True)
        return 0 if result.returncode == 0 and finished else 1


if __name__ == "__main__":
    raise SystemExit(main())
