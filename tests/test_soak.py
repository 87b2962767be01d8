"""Seeded randomized soak: many DAG-level runs with random faults; no batch is ever duplicated or lost.

A run is one task instance of the operator (its own run id and series), executed in-process against the
sandbox with random faults armed, and retried as Airflow would while it fails with an error Airflow
retries (one try more than the fault uses armed: each use can fail one try at most).
``CAPILLARY_SOAK_RUNS`` (default 50) and ``CAPILLARY_SOAK_SEED`` set the size and the seed; the figures
are printed at the end (run pytest with ``-s`` to see them).
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from capillary_provider._compat import AirflowFailException
from capillary_provider.sandbox.testing import SandboxClient
from tests.conftest import FakeTaskInstance, mobile_rows
from tests.faultkit import (
    batch_names,
    jobs_per_file,
    make_operator,
    no_recheck_pause,
    run_operator,
    upload_calls,
    use_fast_trigger_hook,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RUNS = int(os.environ.get("CAPILLARY_SOAK_RUNS", "50"))
SEED = int(os.environ.get("CAPILLARY_SOAK_SEED", "20261127"))
FIRST_SERIES = 70_000

FAULTS: list[tuple[str, tuple[str, ...], dict[str, Any]]] = [
    ("401", ("upload", "status"), {"type": "status", "status": 401}),
    ("429", ("upload", "status"), {"type": "status", "status": 429, "retry_after": 0.01}),
    ("500", ("upload", "status"), {"type": "status", "status": 500}),
    ("502", ("upload", "status"), {"type": "status", "status": 502}),
    ("503", ("upload", "status"), {"type": "status", "status": 503}),
    ("503-after-body", ("upload",), {"type": "status", "status": 503, "after_body": True}),
    ("drop-before-body", ("upload", "status", "token"), {"type": "drop_before_body"}),
    ("drop-after-body", ("upload", "status", "token"), {"type": "drop_after_body"}),
    ("malformed-json", ("upload", "status", "token"), {"type": "malformed_json"}),
    ("success-false", ("upload", "status", "token"), {"type": "success_false"}),
    ("token-expires-early", ("token",), {"type": "expire_tokens", "seconds": 0}),
    ("answer-after-timeout", ("upload",), {"type": "delay", "seconds": 2.5}),
]


def test_soak_random_faults_never_duplicate_or_lose_a_batch(
    capillary_conn: SandboxClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_recheck_pause(monkeypatch)
    use_fast_trigger_hook(monkeypatch)
    monkeypatch.setattr("tenacity.nap.time.sleep", lambda seconds: None)
    capillary_conn.set_step_seconds(0.02)
    rng = random.Random(SEED)
    figures: Counter[str] = Counter()
    injected: Counter[str] = Counter()
    outcomes: list[str] = []
    started = time.monotonic()
    for run in range(RUNS):
        series = FIRST_SERIES + run
        rows, batch_size = rng.randint(1, 40), rng.randint(5, 15)
        batches = -(-rows // batch_size)
        source = tmp_path / f"run{run}.csv"
        source.write_text("mobile,code\n" + "".join(f"{m},{c}\n" for m, c in mobile_rows(rows, start=run * 100)))
        context = {"ti": FakeTaskInstance(dag_id="soak", run_id=f"soak__{run}")}
        deferrable = rng.random() < 0.5
        uses = 0
        for _ in range(rng.randint(0, 3)):
            name, endpoints, action = rng.choice(FAULTS)
            endpoint = rng.choice(endpoints)
            times = rng.randint(1, 2)
            capillary_conn.add_fault(endpoint, action, times=times)
            injected[f"{name}@{endpoint}"] += 1
            uses += times
        summary: dict[str, Any] | None = None
        errors: list[str] = []
        for _ in range(1 + uses):  # each use of a fault can fail one try at most: then Airflow retries
            figures["tries"] += 1
            operator = make_operator(source, series, batch_size=batch_size, deferrable=deferrable)
            try:
                summary = run_operator(operator, context)
                break
            except AirflowFailException:
                raise
            except Exception as exc:  # Airflow would retry the task
                figures[f"retried after {type(exc).__name__}"] += 1
                errors.append(f"{type(exc).__name__}: {exc}")
        capillary_conn.clear_faults()
        assert summary is not None, f"run {run} (seed {SEED}) still failing after {1 + uses} tries: {errors}"
        per_file = jobs_per_file(capillary_conn, series)
        assert per_file == dict.fromkeys(batch_names(context, batches), 1), f"run {run} (seed {SEED}): {per_file}"
        assert summary["total_rows"] == summary["accepted_rows"] == rows, f"run {run} (seed {SEED})"
        figures["runs"] += 1
        figures["batches"] += batches
        figures["jobs"] += sum(per_file.values())
        figures["duplicates"] += sum(count - 1 for count in per_file.values())
        figures["lost"] += batches - len(per_file)
        figures["upload requests"] += len(upload_calls(capillary_conn, series))
        figures["deferrable runs"] += deferrable
        outcomes.append("ok")
    elapsed = time.monotonic() - started
    lines = [
        f"soak: seed {SEED}, {figures['runs']} runs ({figures['deferrable runs']} deferrable) in {elapsed:.1f} s",
        f"  batches {figures['batches']}, jobs {figures['jobs']}, "
        f"duplicates {figures['duplicates']}, lost {figures['lost']}",
        f"  upload requests {figures['upload requests']}, task tries {figures['tries']}",
        f"  faults armed {sum(injected.values())}: " + ", ".join(f"{k} {v}" for k, v in sorted(injected.items())),
        "  " + ", ".join(f"{k} {v}" for k, v in sorted(figures.items()) if k.startswith("retried")),
    ]
    print("\n" + "\n".join(lines))
    assert (figures["jobs"], figures["duplicates"], figures["lost"]) == (figures["batches"], 0, 0)
    assert outcomes == ["ok"] * RUNS
