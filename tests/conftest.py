"""Shared fixtures: a sandbox over real HTTP, a connection pointing at it, coupon files, a task context."""

from __future__ import annotations

import io
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk import ObjectStoragePath

import capillary_provider.hooks._base as base_module
import capillary_provider.hooks._transport as transport_module
import capillary_provider.hooks._upload_body as upload_body_module
from capillary_provider.hooks._transport import TokenCache
from capillary_provider.operators.coupon_upload import CouponUploadOperator
from capillary_provider.sandbox.dag_test import EXAMPLE_DAGS_FOLDER, airflow_env, connection_json, migrate
from capillary_provider.sandbox.testing import SandboxClient, running_sandbox

pytest_plugins = ("tests.stores", "tests.pgp_keys")
"""The stores' servers (S3, SFTP, Azure) and the PGP key pairs, as fixtures for every module."""

SANDBOX_STEP_SECONDS = 0.2
"""Jobs of the shared sandbox move one state every 0.2 s: a job needs a few polls, tests stay quick."""


SERVER_MARKERS = {"integration", "e2e", "browser", "deployment"}
"""The markers that say a test talks to a server: ``make test-fast`` deselects them all."""

LONG_MARKERS = {"e2e", "browser", "slow"}
"""The markers of tests that take seconds each (Airflow processes, a browser, long properties)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Refuse a test that uses the sandbox without a marker saying so: the fast subset would start servers.

    Then the modules that start processes (:data:`LONG_MARKERS`) go first, in their order: with ``--dist
    loadfile`` xdist hands modules out in this order, so the long ones start at once and the short ones fill
    the end of the run, instead of one long module starting last on its own.
    """
    long_modules = {
        item.nodeid.split("::")[0] for item in items if LONG_MARKERS & {m.name for m in item.iter_markers()}
    }
    items.sort(key=lambda item: item.nodeid.split("::")[0] not in long_modules)
    unmarked = [
        item.nodeid
        for item in items
        if "sandbox_server" in getattr(item, "fixturenames", ())
        and not SERVER_MARKERS & {mark.name for mark in item.iter_markers()}
    ]
    if unmarked:
        raise pytest.UsageError(
            f"these tests use the sandbox but carry none of the markers {sorted(SERVER_MARKERS)}: mark them "
            f"(pytestmark = pytest.mark.integration): {', '.join(unmarked)}"
        )


@pytest.fixture(scope="session")
def sandbox_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxClient]:
    """One sandbox process for the whole session (starting one costs about a second)."""
    with running_sandbox(step_seconds=SANDBOX_STEP_SECONDS, data_dir=tmp_path_factory.mktemp("sandbox")) as client:
        yield client


@pytest.fixture(scope="session")
def migrated_airflow_db(sandbox_server: SandboxClient, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The SQLite metadata DB of an ``AIRFLOW_HOME`` after ``airflow db migrate``, made once per session.

    A migration takes 10 to 20 s and every test of real Airflow needs a fresh DB: each gets a copy of this
    one from :func:`fresh_airflow_home` (the schema does not depend on the DAGs folder or the connections)."""
    home = tmp_path_factory.mktemp("airflow_home_migrated")
    migrate(airflow_env(home, EXAMPLE_DAGS_FOLDER, sandbox_server))
    return home / "airflow.db"


@pytest.fixture(scope="session")
def fresh_airflow_home(migrated_airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``fresh_airflow_home(name)``: a new empty ``AIRFLOW_HOME`` holding a copy of the migrated metadata DB."""

    def make(name: str) -> Path:
        home = tmp_path_factory.mktemp(name)
        for path in migrated_airflow_db.parent.glob(migrated_airflow_db.name + "*"):  # the DB and any WAL file
            shutil.copyfile(path, home / path.name)
        return home

    return make


@pytest.fixture
def sandbox(sandbox_server: SandboxClient) -> Iterator[SandboxClient]:
    """The shared sandbox, with no jobs, no tokens and no faults left by an earlier test."""
    sandbox_server.reset()
    sandbox_server.set_step_seconds(SANDBOX_STEP_SECONDS)
    yield sandbox_server
    sandbox_server.reset()


@pytest.fixture
def capillary_conn(sandbox: SandboxClient, monkeypatch: pytest.MonkeyPatch) -> SandboxClient:
    """``capillary_default`` points at the sandbox (through the environment, no metadata DB needed)."""
    monkeypatch.setenv("AIRFLOW_CONN_CAPILLARY_DEFAULT", connection_json(sandbox))
    return sandbox


@pytest.fixture
def write_csv(tmp_path: Path) -> Callable[..., Path]:
    """Write a coupon CSV: ``write_csv(rows, header=("mobile", "code"), name="coupons.csv")``."""

    def write(
        rows: list[tuple[str, ...]] | list[list[str]],
        header: tuple[str, ...] | None = ("mobile", "code"),
        name: str = "coupons.csv",
        newline: str = "\n",
    ) -> Path:
        lines = ([",".join(header)] if header else []) + [",".join(row) for row in rows]
        path = tmp_path / name
        path.write_bytes((newline.join(lines) + newline).encode())
        return path

    return write


def mobile_rows(count: int, start: int = 0, prefix: str = "C") -> list[tuple[str, str]]:
    """``count`` valid (mobile, code) rows with distinct codes."""
    return [(f"9198{n:08d}", f"{prefix}{n:09d}") for n in range(start, start + count)]


def make_operator(source: Any, series: int, **kwargs: Any) -> CouponUploadOperator:
    """A coupon upload operator on ``series`` as tests use it: mobile numbers in column 0, waiting in the
    worker with quick polls; ``kwargs`` add or override parameters. A :class:`~pathlib.Path` source is
    passed as its string (an object storage path, a list or a pattern as given)."""
    options: dict[str, Any] = {
        "task_id": "upload",
        "coupon_series_id": series,
        # (On Airflow 3.1 an ObjectStoragePath is a pathlib.Path too: it keeps its connection only as itself.)
        "source": str(source) if isinstance(source, Path) and not isinstance(source, ObjectStoragePath) else source,
        "customer_identifier": "MOBILE",
        "customer_identifier_column": 0,
        "poll_interval": 0.1,
        "timeout": 120,
        "deferrable": False,
    }
    options.update(kwargs)
    return CouponUploadOperator(**options)


@pytest.fixture
def coupons(write_csv: Callable[..., Path]) -> Path:
    """25 valid rows (three batches of at most 10)."""
    return write_csv(mobile_rows(25))


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """tenacity's pauses between retries, recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr("tenacity.nap.time", SimpleNamespace(sleep=recorded.append))
    return recorded


class FakeClock:
    """Stands in for the ``time`` of the hook's transport (token expiry) and upload body (progress):
    ``monotonic()`` is whatever the test sets ``now`` to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """The hooks' clock (token expiry, upload progress) stands still until the test moves ``now``."""
    fake = FakeClock()
    monkeypatch.setattr(transport_module, "time", fake)
    monkeypatch.setattr(upload_body_module, "time", fake)
    return fake


class RecordingFile(io.BytesIO):
    """A binary file that remembers the size of every read asked of it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.read_sizes: list[int | None] = []

    def read(self, size: int | None = -1) -> bytes:
        self.read_sizes.append(size)
        return super().read(size)


class CountingOpen:
    """Wraps ``ObjectStoragePath.open``: counts the bytes read from the store through every file it opens."""

    def __init__(self, original: Any) -> None:
        self.original, self.bytes_read = original, 0

    def __call__(self, path: ObjectStoragePath, *args: Any, **kwargs: Any) -> Any:
        handle = self.original(path, *args, **kwargs)
        counter = self
        read = handle.read

        def counting_read(*a: Any, **kw: Any) -> Any:
            data = read(*a, **kw)
            counter.bytes_read += len(data)
            return data

        handle.read = counting_read
        return handle


class FakeTaskInstance(SimpleNamespace):
    """Just enough of a task instance for operator tests that need no metadata DB: ids and XCom."""

    def __init__(
        self, dag_id: str = "test_dag", task_id: str = "upload", run_id: str = "manual__1", map_index: int = -1
    ):
        super().__init__(dag_id=dag_id, task_id=task_id, run_id=run_id, map_index=map_index, try_number=1)
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        json.dumps(value)  # XCom must stay JSON: fail the test if it is not
        self.xcom[key] = value

    def xcom_pull(self, task_ids: str | None = None, key: str = "return_value", **kwargs: Any) -> Any:
        """This task instance's own XCom (what the operators read back after a deferral)."""
        assert task_ids in (None, self.task_id), "tests only pull their own task's XCom"
        return self.xcom.get(key)


@pytest.fixture
def context() -> dict[str, Any]:
    """A task context with a :class:`FakeTaskInstance` as ``ti``."""
    return {"ti": FakeTaskInstance()}


@pytest.fixture(autouse=True)
def _no_stray_capillary_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never pick up a real Capillary connection from the developer's environment."""
    for key in list(os.environ):
        if key.startswith("AIRFLOW_CONN_CAPILLARY"):
            monkeypatch.delenv(key)


@pytest.fixture(autouse=True)
def _fresh_token_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts without tokens: hooks share tokens per process, tests must not share them."""
    monkeypatch.setattr(base_module, "TOKENS", TokenCache())


WAIT_BOUND = 10.0
"""Longest wait for a condition in :func:`wait_for`; a bound against hangs, not a timing assertion."""


def wait_for(condition: Callable[[], Any], what: str, timeout: float = WAIT_BOUND, pause: float = 0.02) -> Any:
    """Poll ``condition`` until it returns something true (returned); fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"after {timeout} s: {what}"
        time.sleep(pause)
    return result


def holds_throughout(condition: Callable[[], Any], seconds: float, what: str, pause: float = 0.02) -> None:
    """Assert that ``condition`` stays true for ``seconds``, checked again and again (something never happens)."""
    deadline = time.monotonic() + seconds
    while True:
        assert condition(), what
        if time.monotonic() >= deadline:
            return
        time.sleep(pause)


@pytest.fixture(autouse=True)
def _fresh_fast_check_caches() -> None:
    """Each test compiles the fast checks' patterns anew: a cache filled by an earlier test (or, under
    ``make mutation``, by the process the mutant's test run was forked from) would hide their code."""
    from capillary_provider.coupon_file import fast

    fast._LINE_CHECKS.clear()
    fast._LITERAL_CACHE.clear()
    fast._SUSPECT_CHECKS.clear()
