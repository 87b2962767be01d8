"""The provider in a distributed Airflow 3: CeleryExecutor, PostgreSQL, Redis, S3 handoff, real crashes.

One deployment (see ``cluster.py``) serves three runs, each driven only through the REST API and each
ending in a successful DAG run with exactly one Capillary job per batch:

a. the happy path: generate into S3 on one worker, upload four batches from S3, wait deferred;
b. the triggerer SIGKILLed while the upload waits deferred, a new triggerer started: it takes the
   trigger over and the same try of the task finishes;
c. the Celery worker running an upload SIGKILLed (its whole process tree) in the middle of sending
   the second of three batches: the scheduler fails the try for its missing heartbeat, the other
   worker runs the retry, which attaches to the batch Capillary has and uploads the other two.

Only ``make deploy-test`` runs it (``-m deployment``); plain ``make test`` deselects it.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from datetime import datetime
from typing import Any

import psutil
import pytest

from capillary_provider.assets import coupon_series_uri
from tests.deployment.cluster import BUCKET, Deployment
from tests.deployment.processes import tree, wait_for

pytestmark = pytest.mark.deployment

UPLOAD = "upload_coupons"
SMALL = {"dag_id": "deployment_deferrable", "rows": 350, "batch_size": 100}
CAMPAIGN = "deployment_campaign"
BIG = {"dag_id": "deployment_worker_crash", "rows": 250_000, "batch_size": 100_000}


def upload_status_calls(deployment: Deployment, series: int) -> int:
    """How many status calls the sandbox has answered for a series (only waiting code makes them)."""
    assert deployment.sandbox is not None
    return len(deployment.sandbox.requests(path_contains=f"getUploadStatus/{series}"))


def wait_for_run(
    deployment: Deployment, dag_id: str, run_id: str, timeout: float, seen: set[str] | None = None
) -> dict[str, Any]:
    """Poll the run through the REST API until it ends; collect the upload task's states on the way."""

    def ended() -> dict[str, Any] | None:
        deployment.processes.check_running()
        if seen is not None:
            state = deployment.api.task_instance(dag_id, run_id, UPLOAD)["state"]
            if state:
                seen.add(state)
        run = deployment.api.run(dag_id, run_id)
        return run if run["state"] in {"success", "failed"} else None

    run = wait_for(f"run {run_id} of {dag_id} to end", ended, timeout, 0.5)
    if run["state"] != "success":
        tis = deployment.api.task_instances(dag_id, run_id)
        states = {ti["task_id"]: (ti["state"], ti["try_number"]) for ti in tis}
        raise AssertionError(f"run {run_id} of {dag_id} ended {run['state']}; task states: {states}")
    return run


def assert_one_job_per_batch(deployment: Deployment, series: int, rows: int, batch_size: int) -> list[dict[str, Any]]:
    """Exactly one FINISHED Capillary job per batch name, and together they hold every row once."""
    assert deployment.sandbox is not None
    jobs = deployment.sandbox.jobs(series)
    per_name = Counter(job["uploadedFileName"] for job in jobs)
    batches = math.ceil(rows / batch_size)
    assert len(per_name) == batches, f"expected {batches} batch names, the sandbox has {dict(per_name)}"
    assert set(per_name.values()) == {1}, f"a batch was uploaded more than once: {dict(per_name)}"
    assert {job["uploadStatus"] for job in jobs} == {"FINISHED"}, jobs
    assert sum(job["actualRowCount"] for job in jobs) == rows
    assert sum(job["totalUploadedCount"] for job in jobs) == rows
    return jobs


def test_a_happy_path_deferrable_upload_of_four_batches(deployment: Deployment) -> None:
    started = time.monotonic()
    assert deployment.sandbox is not None
    deployment.sandbox.set_step_seconds(1.0)  # a few seconds per job: long enough to be seen deferred
    series = 9101
    run_id = deployment.api.trigger(SMALL["dag_id"], {"coupon_series_id": series, "rows": SMALL["rows"]})
    seen: set[str] = set()
    wait_for_run(deployment, SMALL["dag_id"], run_id, 240, seen)

    assert "deferred" in seen, f"the upload never deferred; its states: {seen}"
    ti = deployment.api.task_instance(SMALL["dag_id"], run_id, UPLOAD)
    assert (ti["state"], ti["try_number"]) == ("success", 1)
    jobs = assert_one_job_per_batch(deployment, series, SMALL["rows"], SMALL["batch_size"])
    # The handoff went through S3: the generated file is in moto's bucket, header and every row.
    key = f"{run_id.replace(':', '_').replace('+', '_')}/coupons.csv"
    body = deployment.s3().get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert len(body.splitlines()) == SMALL["rows"] + 1
    # The trigger's first start in a fresh triggerer does not block its event loop (no HTTP import there).
    triggerer_log = deployment.triggerers[-1].log_text()
    assert "Starting the triggerer" in triggerer_log
    assert "async thread was blocked" not in triggerer_log, triggerer_log[-3000:]

    # The series' asset event makes the scheduler run the campaign DAG scheduled on that Asset.
    def campaign_ended() -> dict[str, Any] | None:
        deployment.processes.check_running()
        runs = deployment.api.runs(CAMPAIGN)
        return next((run for run in runs if run["state"] in {"success", "failed"}), None)

    waited = time.monotonic()
    campaign = wait_for("the scheduler to run the campaign DAG on the series' asset event", campaign_ended, 90)
    tis = {ti["task_id"]: ti["state"] for ti in deployment.api.task_instances(CAMPAIGN, campaign["dag_run_id"])}
    assert (campaign["run_type"], campaign["state"]) == ("asset_triggered", "success"), (campaign, tis)
    [event] = deployment.api.upstream_asset_events(CAMPAIGN, campaign["dag_run_id"])
    assert event["uri"] == coupon_series_uri(deployment.sandbox.url, series)
    source = (event["source_dag_id"], event["source_run_id"], event["source_task_id"])
    assert source == (SMALL["dag_id"], run_id, UPLOAD)
    assert event["extra"] == {
        "coupon_series_id": str(series),
        "upload_kind": "coupon",
        "status": "FINISHED",
        "job_ids": sorted(job["jobId"] for job in jobs),
        "total_rows": SMALL["rows"],
        "accepted_rows": SMALL["rows"],
        "rejected_rows": 0,
    }
    deployment.observations.append(
        f"a: the campaign DAG's asset-triggered run succeeded; the test waited {time.monotonic() - waited:.1f} s for it"
    )
    deployment.phase("a: happy path (deferrable, 4 batches)", started)


def test_b_triggerer_killed_while_deferred_a_new_one_takes_over(deployment: Deployment) -> None:
    started = time.monotonic()
    api, sandbox = deployment.api, deployment.sandbox
    assert sandbox is not None
    sandbox.set_step_seconds(100_000)  # the jobs stay STARTED until released below
    series, dag_id = 9102, SMALL["dag_id"]
    run_id = api.trigger(dag_id, {"coupon_series_id": series, "rows": SMALL["rows"]})

    def deferred_in_a_triggerer() -> dict[str, Any] | None:
        deployment.processes.check_running()
        ti = api.task_instance(dag_id, run_id, UPLOAD)
        trigger = ti.get("trigger") or {}
        return ti if ti["state"] == "deferred" and trigger.get("triggerer_id") else None

    ti = wait_for("the upload to defer and a triggerer to take its trigger", deferred_in_a_triggerer, 180)
    first_triggerer_job = ti["trigger"]["triggerer_id"]
    polls = upload_status_calls(deployment, series)
    wait_for("the first triggerer to poll Capillary", lambda: upload_status_calls(deployment, series) > polls, 60)

    old = deployment.triggerers[-1]
    killed = deployment.processes.kill(old)
    assert old.pid in killed  # kill() returned: every process of that triggerer's tree is gone
    assert old.process.returncode == -9, f"the triggerer ended with {old.process.returncode}, not SIGKILL"
    polls_after_kill = upload_status_calls(deployment, series)
    assert api.task_instance(dag_id, run_id, UPLOAD)["state"] == "deferred"

    restarted, restarted_wall = time.monotonic(), time.time()
    new = deployment.start_triggerer()

    def taken_over() -> int | None:
        deployment.processes.check_running()
        trigger = api.task_instance(dag_id, run_id, UPLOAD).get("trigger") or {}
        job = trigger.get("triggerer_id")
        return job if job not in (None, first_triggerer_job) else None

    second_triggerer_job = wait_for("the new triggerer to take the trigger over", taken_over, 180)
    takeover = time.monotonic() - restarted
    wait_for(
        "the new triggerer to poll Capillary",
        lambda: upload_status_calls(deployment, series) > polls_after_kill,
        60,
    )
    first_poll = time.monotonic() - restarted
    jobs = {job["id"]: job for job in api.triggerer_jobs()}
    assert jobs[second_triggerer_job]["state"] == "running"
    # That job began after the new triggerer was started (and the old one is dead): it is the new one.
    assert datetime.fromisoformat(jobs[second_triggerer_job]["start_date"]).timestamp() > restarted_wall - 1

    sandbox.set_step_seconds(0.3)  # release the jobs: the new triggerer sees them finish
    wait_for_run(deployment, dag_id, run_id, 180)
    ti = api.task_instance(dag_id, run_id, UPLOAD)
    assert (ti["state"], ti["try_number"]) == ("success", 1), "the same try must finish, without a retry"
    assert_one_job_per_batch(deployment, series, SMALL["rows"], SMALL["batch_size"])
    assert new.process.poll() is None
    deployment.observations.append(
        f"b: {old.name} (pid {old.pid}, job {first_triggerer_job}) SIGKILLed while the upload was deferred; "
        f"{new.name} (job {second_triggerer_job}) took the trigger over {takeover:.1f} s after it was started "
        f"and polled Capillary at {first_poll:.1f} s; the same try (1) finished"
    )
    deployment.phase("b: triggerer killed while deferred, a new one takes over", started)


def test_c_worker_killed_mid_upload_the_retry_uploads_each_batch_once(deployment: Deployment) -> None:
    started = time.monotonic()
    api, sandbox, proxy = deployment.api, deployment.sandbox, deployment.proxy
    assert sandbox is not None
    assert proxy is not None
    sandbox.set_step_seconds(0.5)
    series, dag_id = 9103, BIG["dag_id"]
    before = len(proxy.requests("/upload/file/"))
    run_id = api.trigger(dag_id, {"coupon_series_id": series, "rows": BIG["rows"]})

    def uploading() -> tuple[dict[str, Any], int] | None:
        """The running upload try and the pid of its task process (``airflow worker -- <ti id>``)."""
        deployment.processes.check_running()
        ti = api.task_instance(dag_id, run_id, UPLOAD)
        if ti["state"] != "running":
            return None
        for process in psutil.process_iter(["pid", "cmdline"]):
            if f"airflow worker -- {ti['id']}" in " ".join(process.info["cmdline"] or []):
                return ti, process.info["pid"]
        return None

    ti, task_pid = wait_for("the upload task to run on a worker", uploading, 240)
    assert ti["try_number"] == 1
    victim = next(w for w in deployment.workers if task_pid in {p.pid for p in tree(w.pid)})
    survivor = next(w for w in deployment.workers if w is not victim)

    def second_batch_in_flight() -> bool:
        uploads = proxy.requests("/upload/file/")[before:]
        return len(uploads) >= 2 and uploads[0].complete and not uploads[1].complete and uploads[1].fraction >= 0.1

    wait_for("the second batch to be on its way", second_batch_in_flight, 180, 0.05)
    survivor_log_at_kill = len(survivor.log_text())
    killed = deployment.processes.kill(victim)  # the worker, its pool, the supervisor and the task process
    severed = proxy.sever_in_flight()  # a crashed machine's kernel does not flush its socket buffers
    assert task_pid in killed
    assert victim.pid in killed
    assert victim.process.returncode == -9
    assert len(severed) == 1, severed
    cut = severed[0]
    assert cut.cut
    assert 0 < cut.body_sent < cut.content_length
    assert len(sandbox.jobs(series)) == 1, "only batch 1 reached Capillary before the kill"
    killed_at = time.monotonic()

    def retry_running() -> bool:
        deployment.processes.check_running()
        ti = api.task_instance(dag_id, run_id, UPLOAD)
        return ti["try_number"] == 2 and ti["state"] in {"running", "success"}

    wait_for("the scheduler to retry the crashed try", retry_running, 180)
    retried = time.monotonic() - killed_at
    wait_for_run(deployment, dag_id, run_id, 300)
    ti = api.task_instance(dag_id, run_id, UPLOAD)
    assert (ti["state"], ti["try_number"]) == ("success", 2), "the crashed try is retried once, and it succeeds"
    assert run_id in survivor.log_text()[survivor_log_at_kill:], f"{survivor.name} did not run the retry"
    assert survivor.process.poll() is None
    assert_one_job_per_batch(deployment, series, BIG["rows"], BIG["batch_size"])
    uploads = proxy.requests("/upload/file/")[before:]
    assert [u.complete for u in uploads].count(True) == math.ceil(BIG["rows"] / BIG["batch_size"])
    assert [u.cut for u in uploads].count(True) == 1, "batch 1 was not sent again, batch 2 once more in full"
    # The events of series 9102 and 9103 (recorded with their runs' success) queue nothing for the campaign,
    # scheduled on 9101 only. Queue first: the scheduler removes a queue entry when it creates the run.
    assert api.queued_asset_events(CAMPAIGN) == []
    assert len(api.runs(CAMPAIGN)) == 1, "only the happy path's series starts the campaign"
    deployment.observations.append(
        f"c: {victim.name} SIGKILLed (pids {killed}, task process {task_pid}) with {cut.body_sent:,} of "
        f"{cut.content_length:,} bytes ({cut.fraction:.0%}) of batch 2 sent; try 2 ran {retried:.1f} s later on "
        f"{survivor.name}, attached to batch 1 and uploaded batches 2 and 3"
    )
    deployment.phase("c: worker killed mid-upload, retried on the other worker", started)
