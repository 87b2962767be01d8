"""The upload and status routes of an upload kind (coupons, redeemed coupons: one flow, told apart by
their paths, job type and form check, see :func:`kind_router`): the opening of a route on a series, the
form, the stored file, the new job and the status answer."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from capillary_provider.sandbox.faults import Endpoint, FaultAction, JobErrored
from capillary_provider.sandbox.multipart import FormError, receive_form
from capillary_provider.sandbox.responses import after_processing, cap_error, upload_envelope

if TYPE_CHECKING:
    from collections.abc import Callable

    from capillary_provider.sandbox.app import Sandbox
    from capillary_provider.sandbox.state import Job


@dataclass(frozen=True)
class Opened:
    """A route on a series past its opening: the endpoint, its armed fault, its log entry and the series id."""

    endpoint: Endpoint
    action: FaultAction | None
    entry: dict[str, Any]
    series_id: int


def open_series_route(sandbox: Sandbox, request: Request, endpoint: Endpoint, series: str) -> Opened | Response:
    """How every route on ``/{series}`` starts (fault, log, token, then the series id of the path), or the
    early answer to give instead; one place, so the four routes cannot drift apart in what they check first."""
    action, entry, early = sandbox.begin(request, endpoint)
    if early is not None:
        return early
    series_id = series_id_of(series)
    if series_id is None:
        return bad_series(series)
    return Opened(endpoint, action, entry, series_id)


def series_id_of(raw: str) -> int | None:
    """The series id of a path segment, or None when it is not a positive integer."""
    return int(raw) if re.fullmatch(r"[0-9]{1,18}", raw) and int(raw) > 0 else None


def bad_series(raw: str) -> Response:
    return cap_error(400, f"couponSeriesId must be a positive integer, got {raw!r}")


def stored_name(uploaded: str, series_id: int) -> str:
    """Capillary's stored file name: ``<stem>_<millis>_<seriesId>.csv``."""
    stem = PurePosixPath(uploaded.replace("\\", "/")).stem
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", stem) or "upload"
    return f"{stem}_{int(time.time() * 1000)}_{series_id}.csv"


@dataclass(frozen=True)
class Upload:
    """An upload request past its opening and its form: the file part is on disk, not yet a job's."""

    opened: Opened
    fields: dict[str, str]
    received: Path
    uploaded_name: str

    def reject(self, message: str) -> Response:
        """Remove the received file and answer 400 with ``message``."""
        self.received.unlink(missing_ok=True)
        return cap_error(400, message)


async def receive_upload(sandbox: Sandbox, request: Request, endpoint: Endpoint, series: str) -> Upload | Response:
    """The opening of an upload route and its whole multipart body (the file part on disk), or the answer
    to give instead (the file part is required by both kinds)."""
    opened = open_series_route(sandbox, request, endpoint, series)
    if isinstance(opened, Response):
        return opened
    try:
        form = await receive_form(request.headers.get("content-type"), request.stream(), sandbox.uploads_dir)
    except FormError as exc:
        return cap_error(400, str(exc))
    except ClientDisconnect:
        return Response(status_code=499)
    opened.entry["fileName"] = form.file_name
    if form.file_path is None or form.file_name is None:
        return cap_error(400, "file is required")
    return Upload(opened, form.fields, form.file_path, form.file_name)


def keep_file(received: Path, uploaded_name: str, uploads_dir: Path, job_id: int, series_id: int) -> tuple[str, Path]:
    """Move the received file to its place; ``(stored file name, path on disk)``."""
    file_name = stored_name(uploaded_name, series_id)
    disk_path = uploads_dir / f"{job_id}_{file_name}"
    received.rename(disk_path)
    return file_name, disk_path


def kind_router(
    sandbox: Sandbox,
    job_type: type[Job],
    paths: tuple[str, str],
    endpoints: tuple[Endpoint, Endpoint],
    job_fields: Callable[[dict[str, str]], dict[str, Any] | str],
) -> APIRouter:
    """The upload and status routes of one upload kind, the same flow for both kinds: ``paths`` and
    ``endpoints`` (the fault book's names) of the upload and of the status route, the kind's job type, and
    ``job_fields``, its check of the form."""
    router = APIRouter()

    @router.post(f"{paths[0]}/{{series}}", name=f"{job_type.kind}_upload")
    async def upload(request: Request, series: str) -> Response:
        return await upload_route(sandbox, request, endpoints[0], series, job_type, job_fields)

    @router.get(f"{paths[1]}/{{series}}", name=f"{job_type.kind}_status")
    async def status(request: Request, series: str) -> Response:
        return await series_status(sandbox, request, endpoints[1], series, job_type)

    return router


async def upload_route(
    sandbox: Sandbox,
    request: Request,
    endpoint: Endpoint,
    series: str,
    job_type: type[Job],
    job_fields: Callable[[dict[str, str]], dict[str, Any] | str],
) -> Response:
    """An upload route's whole answer, the same flow for both kinds: ``job_fields`` turns the form's text
    fields into what only the kind's job has, or into the message of the 400 answer."""
    upload = await receive_upload(sandbox, request, endpoint, series)
    if isinstance(upload, Response):
        return upload
    fields = job_fields(upload.fields)
    if isinstance(fields, str):
        return upload.reject(fields)
    return await start_job(sandbox, upload, job_type, **fields)


async def start_job(sandbox: Sandbox, upload: Upload, job_type: type[Job], **fields: Any) -> Response:
    """Store the received file, start a ``job_type`` job on it (``fields``: what only that kind has), and
    answer with the new job as Capillary does, under the kind's jobs key."""
    opened = upload.opened
    job_id = sandbox.state.new_job_id()
    file_name, disk_path = keep_file(
        upload.received, upload.uploaded_name, sandbox.uploads_dir, job_id, opened.series_id
    )
    job = job_type(
        job_id=job_id,
        series_id=opened.series_id,
        created=time.time(),
        file_name=file_name,
        uploaded_file_name=upload.uploaded_name,
        uploaded_file_url=f"sandbox/uploads/{disk_path.name}",
        disk_path=disk_path,
        force_errored=isinstance(opened.action, JobErrored),
        **fields,
    )
    sandbox.state.add_job(job)
    sandbox.worker.submit(job)
    opened.entry["jobId"] = job_id
    view = job.view(job.created, sandbox.state.step_seconds, as_created=True)
    envelope = upload_envelope(opened.series_id, file_name, [view], job_type.jobs_key)
    return await after_processing(opened.endpoint, opened.action, envelope)


async def series_status(
    sandbox: Sandbox, request: Request, endpoint: Endpoint, series: str, job_type: type[Job]
) -> Response:
    """A status route's whole answer: the series' jobs of ``job_type``'s kind, oldest first, the latest
    file name on top (or the route's early answer)."""
    opened = open_series_route(sandbox, request, endpoint, series)
    if isinstance(opened, Response):
        return opened
    jobs = sandbox.state.series_jobs(opened.series_id, job_type.kind)
    now, step = time.time(), sandbox.state.step_seconds
    latest = jobs[-1].file_name if jobs else None
    response = upload_envelope(opened.series_id, latest, [job.view(now, step) for job in jobs], job_type.jobs_key)
    return await after_processing(opened.endpoint, opened.action, response)
