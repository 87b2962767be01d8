"""`make demo` (``capillary_provider.sandbox.dag_test``) ends with the jobs table on whole lines: Airflow's
log before it is cut at line boundaries and written, flushed, to the same stream."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from capillary_provider.sandbox import dag_test


def test_a_long_log_is_cut_at_a_line_boundary_and_says_how_much_was_left_out() -> None:
    log = "".join(f"line {number}\n" for number in range(1000))
    tail = dag_test._tail(log, limit=100)
    first, *rest = tail.splitlines()
    assert first == f"[... {1000 - len(rest)} earlier lines of Airflow's log left out ...]"
    assert rest == [f"line {number}" for number in range(1000 - len(rest), 1000)]


def test_a_log_without_final_newline_still_ends_its_line() -> None:
    assert dag_test._tail("last words") == "last words\n"
    assert dag_test._tail("") == ""


def test_the_demo_prints_the_jobs_table_after_the_whole_log_on_one_stream(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fake_dags_test(dag_id: str, env: dict[str, str], **options: Any) -> subprocess.CompletedProcess[str]:
        stdout = "".join(f"2026-12-05 [info] step {number}\n" for number in range(3000)) + "no newline at the end"
        return subprocess.CompletedProcess([dag_id], 0, stdout=stdout, stderr="a warning on stderr")

    monkeypatch.setattr(dag_test, "migrate", lambda env: None)
    monkeypatch.setattr(dag_test, "dags_test", fake_dags_test)
    dag_test.main(["any_dag", "--dags-folder", "."])
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert err == ""
    assert lines[1].startswith("[... ")
    assert lines[1].endswith(" earlier lines of Airflow's log left out ...]")
    assert lines[-6:] == [
        "no newline at the end",
        "a warning on stderr",
        "",
        f"{'job':>6} {'kind':<8} {'series':>8} {'status':<10} {'rows':>8} {'accepted':>9} {'rejected':>9}  file",
        "",
        "`airflow dags test any_dag` exited 0; jobs finished: False",
    ]
