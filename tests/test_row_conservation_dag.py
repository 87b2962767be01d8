"""Row conservation through real Airflow: one `airflow dags test` run, one task per option family.

Each family is a source file a retail data team really gets and the parameters that fit it (or, for
``first_row_is_data``, the defaults that do not). After the run, every data row of each source is in
the batches the sandbox stored (with exactly the columns Capillary takes) or in the rejected-rows file,
by the csv-module reference of tests/row_reference.py; the family that must fail sent nothing.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from capillary_provider.sandbox.dag_test import airflow_env, dags_test
from capillary_provider.sandbox.testing import SandboxClient, running_sandbox
from tests.row_reference import cells, project, reference_records, rejected_rows, stored_rows

pytestmark = pytest.mark.e2e

DAG_ID = "capillary_row_conservation"
DAGS_FOLDER = Path(__file__).resolve().parent / "dags"
MILLIS = "1764547200000"
MOBILES = [f"9198765{n:05d}" for n in range(50)]


@dataclass
class Family:
    """One option family: a source (records, with its header if it has one) and the parameters."""

    name: str
    kind: str
    records: list[list[str]]
    options: dict[str, Any]
    taken: list[int]
    """The source columns Capillary takes, in file order."""
    header_row: bool = True
    delimiter: str = ","
    suffix: str = ".csv"
    newline: str = "\n"
    bom: bool = False
    fails: bool = False

    def encoded(self) -> bytes:
        out = io.StringIO()
        csv.writer(out, delimiter=self.delimiter, lineterminator=self.newline).writerows(self.records)
        data = (b"\xef\xbb\xbf" if self.bom else b"") + (out.getvalue() + self.newline).encode()
        return gzip.compress(data) if self.suffix.endswith(".gz") else data


def coupons(count: int = 50) -> list[list[str]]:
    return [[mobile, f"C{index:03d}"] for index, mobile in enumerate(MOBILES[:count])]


def redemptions() -> list[list[str]]:
    return [[mobile, f"R{index:03d}", MILLIS, "store-7"] for index, mobile in enumerate(MOBILES[:20])]


FAMILIES = [
    Family("headerless_semicolon", "coupon", coupons(), {"has_header": False, "delimiter": ";"}, [0, 1],
           header_row=False, delimiter=";"),
    Family("first_row_is_data", "coupon", coupons(), {}, [0, 1], header_row=False, fails=True),
    Family("extra_columns", "coupon", [["mobile", "coupon_code", "store"], *([*r, "s1"] for r in coupons())],
           {"coupon_code_column": 1}, [0, 1]),
    Family("invalid_rows_set_aside", "coupon", [["mobile", "code"], *coupons(10), ["12ab", "BAD1"], ["", "BAD2"]],
           {"invalid_rows": "skip"}, [0, 1]),
    Family("email_second_pipe", "coupon", [["code", "email"], ["E1", "a@shop.com"], ["E2", "b@shop.com"]],
           {"customer_identifier": "email", "customer_identifier_column": 1, "delimiter": "|"}, [0, 1],
           delimiter="|"),
    Family("gz_crlf_bom_quoted", "coupon", [["mobile", "code"], [MOBILES[0], 'a,"b'], [MOBILES[1], "c;d|e"]],
           {}, [0, 1], suffix=".csv.gz", newline="\r\n", bom=True),
    Family("not_tagged", "coupon", [["code"], ["N1"], ["N2"], ["N3"]],
           {"customer_identifier": "NOT_TAGGED", "customer_identifier_column": None}, [0]),
    Family("redeemed_header_map", "redeemed", [["mobile", "couponCode", "redeemedDateInMillis", "redeemedAt"],
           *redemptions()], {}, [0, 1, 2, 3]),
    Family("redeemed_upload_headers_tab", "redeemed", [[r[0], "x", r[1], r[2], r[3]] for r in redemptions()],
           {"has_header": False, "delimiter": "tab",
            "upload_headers": {"mobile": 0, "couponCode": 2, "redeemedDateInMillis": 3, "redeemedAt": 4}},
           [0, 2, 3, 4], header_row=False, delimiter="\t"),
]  # fmt: skip


@dataclass
class Run:
    process: subprocess.CompletedProcess[str]
    home: Path
    folder: Path
    sandbox: SandboxClient

    def state(self, task_id: str) -> str:
        with sqlite3.connect(self.home / "airflow.db") as db:
            states = db.execute("SELECT state FROM task_instance WHERE task_id = ?", (task_id,)).fetchall()
        assert len(states) == 1, f"{task_id} ran {len(states)} times:\n{self.process.stderr[-5000:]}"
        return str(states[0][0])


def series_of(family: Family) -> int:
    return 9800 + FAMILIES.index(family)


def task_options(family: Family, folder: Path) -> dict[str, Any]:
    return {
        "coupon_series_id": series_of(family),
        "source": str(folder / f"{family.name}{family.suffix}"),
        "rejected_rows_to": str(folder / f"{family.name}.rejected.csv"),
        "wait_for_completion": False,
        "check_series": False,
        "customer_identifier": "MOBILE",
        **({"coupon_identifier": "COUPON_CODE"} if family.kind == "redeemed" else {"customer_identifier_column": 0}),
        **family.options,
    }


@pytest.fixture(scope="module")
def run(fresh_airflow_home: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    home = fresh_airflow_home("airflow_home")
    folder = tmp_path_factory.mktemp("conservation")
    for family in FAMILIES:
        (folder / f"{family.name}{family.suffix}").write_bytes(family.encoded())
    families = [{"name": f.name, "kind": f.kind, "options": task_options(f, folder)} for f in FAMILIES]
    (folder / "families.json").write_text(json.dumps(families))
    with running_sandbox(step_seconds=0.05) as sandbox:
        env = airflow_env(home, DAGS_FOLDER, sandbox, CAPILLARY_CONSERVATION_DIR=str(folder))
        yield Run(dags_test(DAG_ID, env), home, folder, sandbox)


@pytest.mark.parametrize("family", [f for f in FAMILIES if not f.fails], ids=lambda f: f.name)
def test_every_data_row_of_the_family_is_uploaded_or_set_aside_once(run: Run, family: Family) -> None:
    assert run.state(family.name) == "success", run.process.stdout[-5000:]
    source = run.folder / f"{family.name}{family.suffix}"
    records = reference_records(source, family.delimiter)
    headers, uploaded = stored_rows(run.sandbox, series_of(family))
    set_aside = rejected_rows(run.folder / f"{family.name}.rejected.csv")
    sent = list(range(len(family.taken)))
    kept = sent if "coupon_code_column" in family.options or "upload_headers" in family.options else family.taken
    data_rows = records[1:] if family.header_row else records
    accounted = project(uploaded, sent) + project([fields for fields, _ in set_aside], kept)
    assert accounted == project(data_rows, family.taken)
    assert uploaded, "nothing was uploaded"
    assert all(len(fields) == len(family.taken) for fields in [*headers, *uploaded])
    for fields, number in set_aside:
        assert cells(fields, kept) == cells(records[number - 1], family.taken)


def test_the_invalid_rows_family_set_two_rows_aside(run: Run) -> None:
    assert len(rejected_rows(run.folder / "invalid_rows_set_aside.rejected.csv")) == 2


def test_a_header_less_file_with_the_defaults_fails_and_sends_nothing(run: Run) -> None:
    (family,) = [f for f in FAMILIES if f.fails]
    assert run.state(family.name) == "failed"
    assert run.sandbox.jobs(series_of(family), kind="all") == []
    assert "row 1 looks like data, not a header row" in run.process.stdout + run.process.stderr
