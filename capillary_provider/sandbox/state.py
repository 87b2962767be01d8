"""In-memory state of the sandbox: tokens, upload jobs (with their lazily computed status), request log."""

from __future__ import annotations

import math
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal

if TYPE_CHECKING:
    from pathlib import Path

STAGES = ("STARTED", "VALIDATED", "COMMITED", "FINISHED")

TokenCheck = Literal["ok", "missing", "unknown", "expired"]
JobKind = Literal["coupon", "redeemed"]
KindFilter = Literal["coupon", "redeemed", "all"]


def now_millis() -> int:
    return int(time.time() * 1000)


def iso(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Job:
    """One upload job. Its stage is derived from elapsed time; its counts come from the CSV worker."""

    job_id: int
    series_id: int
    created: float
    file_name: str
    uploaded_file_name: str
    uploaded_file_url: str
    disk_path: Path
    identifier: str
    identifier_column: int | None
    force_errored: bool = False
    base_stage: int = 0
    base_time: float = 0.0
    parsed_at: float | None = None
    parse_error: str | None = None
    actual_rows: int = 0
    error_rows: int = 0
    accepted_rows: int = 0
    error_file_url: str | None = None
    success_file_url: str | None = None
    cancelled: bool = False

    kind: ClassVar[JobKind] = "coupon"
    jobs_key: ClassVar[str] = "uploadJobStatuses"
    """Where the upload and status answers list jobs of this kind."""
    stages: ClassVar[tuple[str, ...]] = STAGES

    def raw_stage(self, now: float, step_seconds: float) -> int:
        last = len(self.stages) - 1
        if step_seconds <= 0:
            return last
        steps = math.floor((now - self.base_time) / step_seconds)
        return min(last, self.base_stage + max(0, steps))

    def _stage_time(self, stage: int, step_seconds: float) -> float:
        return self.base_time + max(0, stage - self.base_stage) * max(step_seconds, 0.0)

    def progress(self, now: float, step_seconds: float, *, as_created: bool = False) -> tuple[str, float, bool]:
        """``(status, updated, done)``: the status name, when it was reached, and whether it is the good end."""
        last = len(self.stages) - 1
        stage = 0 if as_created else self.raw_stage(now, step_seconds)
        if self.parsed_at is None:
            stage = min(stage, 0)  # validation is the CSV parse: nothing moves until it is done
        updated = self._stage_time(stage, step_seconds) if stage > 0 else self.created
        if stage > 0 and self.parsed_at is not None:
            updated = max(updated, self.parsed_at)
        status = self.stages[stage]
        terminal = False
        if self.parse_error is not None and stage >= 1:
            status, terminal = "ERRORED", True
        elif stage == last:
            terminal = True
            if self.force_errored:
                status = "ERRORED"
        return status, updated, terminal and status == self.stages[last]

    def _common_view(self, updated: float, done: bool) -> dict[str, Any]:
        return {
            "createdOn": str(int(self.created * 1000)),
            "updatedOn": str(int(updated * 1000)),
            "errorFileUrl": self.error_file_url if done else None,
            "successFileUrl": self.success_file_url if done else None,
            "uploadedFileUrl": self.uploaded_file_url,
            "totalUploadedCount": self.accepted_rows if done else 0,
            "actualRowCount": self.actual_rows if done else 0,
            "errorCount": self.error_rows if done else 0,
            "uploadTableName": None,
            "uploadedFileName": self.uploaded_file_name,
        }

    def view(self, now: float, step_seconds: float, *, as_created: bool = False) -> dict[str, Any]:
        """The job as Capillary shows it in ``uploadJobStatuses`` (``as_created``: as the upload answers it)."""
        status, updated, done = self.progress(now, step_seconds, as_created=as_created)
        return {
            "jobId": self.job_id,
            "uploadStatus": status,
            **self._common_view(updated, done),
            "audienceGroupId": None,
            "audienceGroupVersionId": None,
        }

    def _internals(self) -> dict[str, Any]:
        return {
            "couponSeriesId": self.series_id,
            "kind": self.kind,
            "fileName": self.file_name,
            "customerIdentifier": self.identifier,
            "storedPath": str(self.disk_path),
            "parsed": self.parsed_at is not None,
            "parseError": self.parse_error,
            "forcedErrored": self.force_errored,
            "counts": {
                "actualRowCount": self.actual_rows,
                "errorCount": self.error_rows,
                "totalUploadedCount": self.accepted_rows,
            },
        }

    def control_view(self, now: float, step_seconds: float) -> dict[str, Any]:
        """The job for ``/_sandbox/jobs``: the Capillary view plus sandbox internals."""
        return {
            **self.view(now, step_seconds),
            **self._internals(),
            "customerIdentifierColumn": self.identifier_column,
        }


@dataclass
class SandboxState:
    """Everything the sandbox remembers. All public methods are thread-safe."""

    step_seconds: float
    token_prefix: str
    request_log_size: int = 10_000
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _tokens: dict[str, float] = field(default_factory=dict)
    _jobs: dict[int, Job] = field(default_factory=dict)
    _next_job_id: int = 1
    _log: deque[dict[str, Any]] = field(init=False)

    def __post_init__(self) -> None:
        self._log = deque(maxlen=self.request_log_size)

    # tokens
    def issue_token(self, ttl: float) -> str:
        token = self.token_prefix + secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = time.time() + ttl
        return token

    def check_token(self, token: str | None) -> tuple[TokenCheck, float | None]:
        if not token:
            return "missing", None
        with self._lock:
            expiry = self._tokens.get(token)
        if expiry is None:
            return "unknown", None
        if time.time() >= expiry:
            return "expired", expiry
        return "ok", expiry

    # jobs
    def new_job_id(self) -> int:
        with self._lock:
            job_id = self._next_job_id
            self._next_job_id += 1
            return job_id

    def add_job(self, job: Job) -> None:
        with self._lock:
            job.base_time = job.created
            self._jobs[job.job_id] = job

    def series_jobs(self, series_id: int, kind: KindFilter = "coupon") -> list[Job]:
        """The series' jobs of this kind (coupon uploads by default), oldest first."""
        return [job for job in self.all_jobs(kind) if job.series_id == series_id]

    def all_jobs(self, kind: KindFilter = "all") -> list[Job]:
        with self._lock:
            jobs = sorted(self._jobs.values(), key=lambda j: j.job_id)
        return [job for job in jobs if kind == "all" or job.kind == kind]

    def set_step_seconds(self, seconds: float) -> None:
        """Change the pace; jobs keep the stage they reached and continue at the new pace from now."""
        now = time.time()
        with self._lock:
            for job in self._jobs.values():
                job.base_stage = job.raw_stage(now, self.step_seconds)
                job.base_time = now
            self.step_seconds = seconds

    # request log
    def log_request(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._log.append(entry)

    def request_log(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._log)

    def reset(self) -> None:
        """Forget jobs, tokens and the request log (job ids keep increasing)."""
        with self._lock:
            for job in self._jobs.values():
                job.cancelled = True
            self._jobs.clear()
            self._tokens.clear()
            self._log.clear()
