"""Start a sandbox in a subprocess and drive it over HTTP: ``with running_sandbox() as sbx: ...``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

DEFAULT_KEY = "sandbox-key"
DEFAULT_SECRET = "sandbox-secret"
_ENDED = frozenset({"FINISHED", "COMPLETED", "ERRORED"})


class SandboxStartError(RuntimeError):
    """The sandbox subprocess did not come up."""


class SandboxClient:
    """Thin client of a running sandbox: its URL and credentials, and its control endpoints."""

    def __init__(self, url: str, key: str = DEFAULT_KEY, secret: str = DEFAULT_SECRET, timeout: float = 10.0):
        self.url = url.rstrip("/")
        self.key = key
        self.secret = secret
        self.timeout = timeout
        self.data_dir: Path | None = None
        self.pid: int | None = None
        self._session = requests.Session()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._session.request(method, f"{self.url}/_sandbox/{path}", timeout=self.timeout, **kwargs)
        response.raise_for_status()
        return response.json()

    def health(self) -> bool:
        return bool(self._call("GET", "health").get("ok"))

    def token(self) -> str:
        """A valid access token (convenience for tests)."""
        response = self._session.post(
            f"{self.url}/v3/oauth/token/generate",
            json={"key": self.key, "secret": self.secret},
            timeout=self.timeout,
        )
        response.raise_for_status()
        return str(response.json()["data"]["accessToken"])

    def add_fault(
        self,
        endpoint: str,
        action: dict[str, Any] | str,
        times: int | None = 1,
        **action_options: Any,
    ) -> dict[str, Any]:
        """Add a rule. ``action`` is a dict or just the type: ``add_fault("upload", "status", status=503)``."""
        body_action = {"type": action, **action_options} if isinstance(action, str) else {**action, **action_options}
        result: dict[str, Any] = self._call(
            "POST", "faults", json={"endpoint": endpoint, "times": times, "action": body_action}
        )
        return result

    def faults(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "faults")
        return result

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def jobs(self, series_id: int | None = None, kind: str = "coupon") -> list[dict[str, Any]]:
        """Control views of the jobs, oldest first: ``kind`` ``"coupon"`` (uploads), ``"redeemed"`` or ``"all"``."""
        params: dict[str, Any] = {"kind": kind}
        if series_id is not None:
            params["series"] = series_id
        result: list[dict[str, Any]] = self._call("GET", "jobs", params=params)
        return result

    def redeemed_jobs(self, series_id: int | None = None) -> list[dict[str, Any]]:
        """Control views of the redeemed-coupon jobs (with ``uploadHeaders``, ``couponIdentifier``, ``details``)."""
        return self.jobs(series_id, kind="redeemed")

    def set_series(self, series_id: int, state: str = "valid", **fields: Any) -> dict[str, Any]:
        """How ``GET /v2/coupon/series`` shows the series: ``"valid"``, ``"unknown"``, ``"expired"`` or
        ``"forbidden"``; ``fields`` override fields of the series (``clientHandlingType="EXTERNAL"``).
        Returns ``{"ok": True, "state": state, "series": <the series as the read shows it, or None>}``."""
        result: dict[str, Any] = self._call("POST", f"series/{series_id}", json={"state": state, "fields": fields})
        return result

    def series_states(self) -> dict[str, dict[str, Any]]:
        """``{"<id>": {"state": ..., "fields": {...}}}`` for every series whose state was set."""
        result: dict[str, dict[str, Any]] = self._call("GET", "series")
        return result

    def seed_codes(
        self,
        series_id: int,
        codes: Iterable[str | tuple[str, str]],
        customer_identifier: str | None = None,
    ) -> list[dict[str, Any]]:
        """Make codes known in the series (as if uploaded): ``"CODE"``, or ``("CODE", customer)`` issued to that
        customer (then ``customer_identifier`` says its type, e.g. ``"MOBILE"``). Returns each code as
        ``{"code", "couponId", "customerIdentifier", "customer"}``."""
        items = [c if isinstance(c, str) else {"code": c[0], "customer": c[1]} for c in codes]
        body: dict[str, Any] = {"codes": items, "customerIdentifier": customer_identifier}
        result: list[dict[str, Any]] = self._call("POST", f"series/{series_id}/codes", json=body)["codes"]
        return result

    def series_codes(self, series_id: int) -> list[dict[str, Any]]:
        """Every code the series knows (uploaded or seeded), as ``{"code", "couponId", "customerIdentifier",
        "customer"}``, by coupon id."""
        result: list[dict[str, Any]] = self._call("GET", f"series/{series_id}/codes")
        return result

    def requests(self, path_contains: str | None = None) -> list[dict[str, Any]]:
        params = {} if path_contains is None else {"path_contains": path_contains}
        result: list[dict[str, Any]] = self._call("GET", "requests", params=params)
        return result

    def reset(self) -> None:
        self._call("POST", "reset")

    def set_step_seconds(self, seconds: float) -> None:
        self._call("POST", "step-seconds", json={"seconds": seconds})

    def wait_for_job(self, job_id: int, timeout: float = 30.0) -> dict[str, Any]:
        """Poll the control endpoint until the job (coupon or redeemed) has ended: FINISHED, COMPLETED or
        ERRORED; return its control view."""
        deadline = time.monotonic() + timeout
        while True:
            for job in self.jobs(kind="all"):
                status = job.get("uploadStatus") or job.get("uploadRedeemedCouponStatus")
                if job["jobId"] == job_id and status in _ENDED:
                    return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} did not finish within {timeout}s")
            time.sleep(0.05)

    def close(self) -> None:
        self._session.close()


@contextmanager
def running_sandbox(
    *,
    key: str = DEFAULT_KEY,
    secret: str = DEFAULT_SECRET,
    token_ttl: float | None = None,
    token_prefix: str | None = None,
    step_seconds: float | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    existing_codes: str | os.PathLike[str] | None = None,
    faults: list[dict[str, Any]] | None = None,
    series_states: dict[int, str] | None = None,
    series_codes: dict[int, str | os.PathLike[str]] | None = None,
    log_level: str = "warning",
    start_timeout: float = 30.0,
) -> Iterator[SandboxClient]:
    """Start ``python -m capillary_provider.sandbox`` on a free 127.0.0.1 port; yield a client; stop it."""
    with tempfile.TemporaryDirectory(prefix="capillary-sandbox-run-") as run_dir:
        port_file = Path(run_dir) / "url"
        data = Path(data_dir) if data_dir is not None else Path(run_dir) / "data"
        command = [
            sys.executable, "-m", "capillary_provider.sandbox",
            "--host", "127.0.0.1", "--port", "0", "--port-file", str(port_file),
            "--key", key, "--secret", secret, "--data-dir", str(data), "--log-level", log_level,
        ]  # fmt: skip
        optional = {
            "--token-ttl": token_ttl,
            "--token-prefix": token_prefix,
            "--step-seconds": step_seconds,
            "--existing-codes": existing_codes,
        }
        for flag, value in optional.items():
            if value is not None:
                command += [flag, str(value)]
        for rule in faults or []:
            command += ["--fault", json.dumps(rule)]
        for series_id, state in (series_states or {}).items():
            command += ["--series-state", f"{series_id}={state}"]
        for series_id, path in (series_codes or {}).items():
            command += ["--series-codes", f"{series_id}={path}"]
        stderr_path = Path(run_dir) / "stderr.log"
        with stderr_path.open("wb") as stderr:
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
            client: SandboxClient | None = None
            try:
                url = _wait_until_up(process, port_file, start_timeout, stderr_path)
                client = SandboxClient(url, key, secret)
                client.data_dir = data
                client.pid = process.pid
                yield client
            finally:
                if client is not None:
                    client.close()
                _stop(process)


def _wait_until_up(process: subprocess.Popen[bytes], port_file: Path, timeout: float, stderr: Path) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SandboxStartError(f"sandbox exited with code {process.returncode} during start-up:\n{_tail(stderr)}")
        if port_file.exists():
            url = port_file.read_text(encoding="utf-8").strip()
            try:
                if requests.get(f"{url}/_sandbox/health", timeout=2).ok:
                    return url
            except requests.RequestException:
                pass
        time.sleep(0.05)
    _stop(process)
    raise SandboxStartError(f"sandbox did not answer within {timeout}s:\n{_tail(stderr)}")


def _tail(path: Path, limit: int = 4000) -> str:
    text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
    return text[-limit:] or "(no stderr output)"


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
