"""Fault injection rules: what the sandbox does wrong, on purpose, for the next N calls."""

from __future__ import annotations

import threading
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Endpoint = Literal["token", "upload", "status", "redeem_upload", "redeem_status", "series"]
UPLOAD_ENDPOINTS = frozenset({"upload", "redeem_upload"})


class _Action(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StatusAction(_Action):
    """Answer this HTTP status with a Capillary-style failure body (or ``body`` when given)."""

    type: Literal["status"]
    status: int = Field(ge=200, le=599)
    retry_after: float | None = Field(default=None, ge=0)
    body: Any = None
    html: str | None = None
    """Answer this text as ``text/html`` instead of JSON: a gateway's or firewall's error page."""
    after_body: bool = False
    """Uploads only: read and store the body (the job IS created) before answering the status."""


class DropBeforeBody(_Action):
    """Close the connection without reading the body and without answering."""

    type: Literal["drop_before_body"]


class DropAfterBody(_Action):
    """Process the call normally (upload: the job is created), then close without answering."""

    type: Literal["drop_after_body"]


class DelayAction(_Action):
    """Process the call normally, sleep ``seconds``, then answer."""

    type: Literal["delay"]
    seconds: float = Field(ge=0)


class MalformedJson(_Action):
    """Process the call normally, then answer 200 with a truncated, non-JSON body."""

    type: Literal["malformed_json"]


class SuccessFalse(_Action):
    """Process the call normally, then answer HTTP 200 with ``success: false``."""

    type: Literal["success_false"]


class ExpireTokens(_Action):
    """Token endpoint only: the issued token expires after ``seconds`` instead of the configured TTL."""

    type: Literal["expire_tokens"]
    seconds: float = Field(default=1.0, ge=0)


class JobErrored(_Action):
    """Upload endpoints only: the created job ends ERRORED instead of FINISHED (or COMPLETED)."""

    type: Literal["job_errored"]


FaultAction = Annotated[
    StatusAction
    | DropBeforeBody
    | DropAfterBody
    | DelayAction
    | MalformedJson
    | SuccessFalse
    | ExpireTokens
    | JobErrored,
    Field(discriminator="type"),
]


class FaultRule(BaseModel):
    """One rule: apply ``action`` to the next ``times`` calls of ``endpoint`` (None: forever)."""

    model_config = ConfigDict(extra="forbid")

    endpoint: Endpoint
    times: int | None = Field(default=1, ge=1)
    action: FaultAction

    @model_validator(mode="after")
    def _check_endpoint(self) -> FaultRule:
        if isinstance(self.action, ExpireTokens) and self.endpoint != "token":
            raise ValueError("expire_tokens applies to the token endpoint only")
        if isinstance(self.action, JobErrored) and self.endpoint not in UPLOAD_ENDPOINTS:
            raise ValueError("job_errored applies to the upload endpoints only")
        if isinstance(self.action, StatusAction) and self.action.after_body and self.endpoint not in UPLOAD_ENDPOINTS:
            raise ValueError("status.after_body applies to the upload endpoints only")
        return self


class FaultBook:
    """Thread-safe ordered list of rules. Each call of an endpoint spends one use of its first live rule."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[tuple[FaultRule, list[int | None]]] = []

    def add(self, rule: FaultRule) -> None:
        with self._lock:
            self._rules.append((rule, [rule.times]))

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def take(self, endpoint: Endpoint) -> FaultAction | None:
        """Return the action for this call of ``endpoint`` (spending it), or None when no rule applies."""
        with self._lock:
            for index, (rule, remaining) in enumerate(self._rules):
                if rule.endpoint != endpoint:
                    continue
                left = remaining[0]
                if left is not None:
                    if left <= 1:
                        del self._rules[index]
                    else:
                        remaining[0] = left - 1
                return rule.action
        return None

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{**rule.model_dump(mode="json"), "remaining": remaining[0]} for rule, remaining in self._rules]
