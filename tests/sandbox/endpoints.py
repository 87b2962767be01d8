"""The sandbox's coupon upload and status endpoints as the sandbox's own tests call them (over real HTTP),
shared by the modules that upload coupons: the coupon tests, and the redemption tests that need coupons
to redeem."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import requests

from capillary_provider.sandbox.testing import SandboxClient

if TYPE_CHECKING:
    from collections.abc import Callable


def auth(token: str | None) -> dict[str, str]:
    """The token header, or none (to see a route refuse an unauthenticated call)."""
    return {} if token is None else {"X-CAP-API-OAUTH-TOKEN": token}


def post_form(
    sbx: SandboxClient,
    token: str | None,
    path: str,
    data: dict[str, str],
    file: tuple[str, str | bytes] | None,
    timeout: float = 10,
) -> requests.Response:
    """POST a multipart form to ``path``: the text fields ``data``, and ``file`` (its name and content) as
    the file part, or no file part at all when it is None (the form is multipart all the same)."""
    if file is None:
        files = {field: (None, value) for field, value in data.items()}
        return requests.post(f"{sbx.url}{path}", headers=auth(token), files=files, timeout=timeout)
    name, content = file
    file_part = {"file": (name, content, "text/csv")}
    return requests.post(f"{sbx.url}{path}", headers=auth(token), files=file_part, data=data, timeout=timeout)


def upload(
    sbx: SandboxClient,
    token: str | None,
    content: str | bytes,
    series: int | str = 7,
    identifier: str | None = "NOT_TAGGED",
    column: str | None = None,
    name: str = "codes.csv",
    timeout: float = 10,
) -> requests.Response:
    """``POST /coupon/api/v1/upload/file/{series}`` with ``content`` as the file part."""
    data = {} if identifier is None else {"customerIdentifier": identifier}
    if column is not None:
        data["customerIdentifierColumn"] = column
    return post_form(sbx, token, f"/coupon/api/v1/upload/file/{series}", data, (name, content), timeout)


def status(sbx: SandboxClient, token: str | None, series: int | str = 7) -> requests.Response:
    """``GET /coupon/api/v1/upload/getUploadStatus/{series}``."""
    return requests.get(f"{sbx.url}/coupon/api/v1/upload/getUploadStatus/{series}", headers=auth(token), timeout=10)


def statuses_seen(jobs: Callable[[], list[dict[str, Any]]], job_id: int, field: str, last: str) -> list[str]:
    """Each status the series' one job shows in ``field``, in order, read from ``jobs`` (a status endpoint's
    job list) every 50 ms until it shows ``last`` (at most 5 s)."""
    seen: list[str] = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (not seen or seen[-1] != last):
        [job] = jobs()
        assert job["jobId"] == job_id
        if not seen or seen[-1] != job[field]:
            seen.append(job[field])
        time.sleep(0.05)
    return seen
