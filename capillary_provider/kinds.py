"""The upload kinds: one flow (validate, batch, upload once, wait, verdict), different endpoints and fields.

A kind is data: where its files go, where its jobs are listed, how Capillary names the job list and
the status field in its answers, and which statuses are final. Everything that waits or judges
(:mod:`capillary_provider.jobs`, :mod:`capillary_provider.waiting`) reads them from here, so the
terminal sets of a kind are corrected in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from capillary_provider.identifiers import IdentifierType


class UploadStatus(StrEnum):
    """States of a coupon upload job (``uploadStatus``); ``COMMITED`` is Capillary's own spelling."""

    STARTED = "STARTED"
    VALIDATED = "VALIDATED"
    COMMITED = "COMMITED"
    FINISHED = "FINISHED"
    ERRORED = "ERRORED"


class RedeemedUploadStatus(StrEnum):
    """States of a redeemed-coupon upload job (``uploadRedeemedCouponStatus``).

    The docs show only ``QUEUED`` and ``COMPLETED``. ``ERRORED`` is the coupon bulk service's failed
    state, taken as the failure of a redemption job too: never success, and no endless wait.
    """

    QUEUED = "QUEUED"
    COMPLETED = "COMPLETED"
    ERRORED = "ERRORED"


@dataclass(frozen=True)
class UploadKind:
    """What differs between two kinds of upload.

    :param name: the kind's id, stored in trigger arguments and job records (``coupon``).
    :param upload_endpoint: path of the multipart upload, with ``{coupon_series_id}``.
    :param status_endpoint: path listing every job of a series, with ``{coupon_series_id}``.
    :param jobs_field: the list of jobs in the answers' ``result``.
    :param status_field: a job's status in that list.
    :param statuses: every status known, in the order a job goes through them.
    :param terminal_statuses: statuses after which a job never changes.
    :param failed_statuses: terminal statuses that fail the task whatever the counts.
    :param done_status: the terminal status of a job that ran to its end.
    :param customer_identifiers: the ``customerIdentifier`` values the endpoint takes.
    """

    name: str
    upload_endpoint: str
    status_endpoint: str
    jobs_field: str
    status_field: str
    statuses: tuple[str, ...]
    terminal_statuses: frozenset[str]
    failed_statuses: frozenset[str]
    done_status: str
    customer_identifiers: frozenset[IdentifierType]

    def is_known(self, status: str) -> bool:
        return status in self.statuses

    def overall_status(self, statuses: list[str]) -> str:
        """One status for several jobs: a failed one if any failed, done if all are done, else the least advanced.

        An unknown status counts as the least advanced of all: it is never taken for success.
        """
        if not statuses:
            return ""
        failed = [status for status in statuses if status in self.failed_statuses]
        if failed:
            return failed[0]
        pending = [status for status in statuses if status not in self.terminal_statuses]
        if not pending:
            return self.done_status
        return min(pending, key=lambda status: self.statuses.index(status) if status in self.statuses else -1)


COUPON = UploadKind(
    name="coupon",
    upload_endpoint="/coupon/api/v1/upload/file/{coupon_series_id}",
    status_endpoint="/coupon/api/v1/upload/getUploadStatus/{coupon_series_id}",
    jobs_field="uploadJobStatuses",
    status_field="uploadStatus",
    statuses=tuple(UploadStatus),
    terminal_statuses=frozenset({UploadStatus.FINISHED, UploadStatus.ERRORED}),
    failed_statuses=frozenset({UploadStatus.ERRORED}),
    done_status=UploadStatus.FINISHED,
    customer_identifiers=frozenset(IdentifierType),
)

REDEEMED_COUPON = UploadKind(
    name="redeemed_coupon",
    upload_endpoint="/coupon/api/v1/upload/redeemFile/{coupon_series_id}",
    status_endpoint="/coupon/api/v1/upload/getUploadRedeemedCouponStatus/{coupon_series_id}",
    jobs_field="redeemUploadJobStatuses",
    status_field="uploadRedeemedCouponStatus",
    statuses=tuple(RedeemedUploadStatus),
    terminal_statuses=frozenset({RedeemedUploadStatus.COMPLETED, RedeemedUploadStatus.ERRORED}),
    failed_statuses=frozenset({RedeemedUploadStatus.ERRORED}),
    done_status=RedeemedUploadStatus.COMPLETED,
    customer_identifiers=frozenset(IdentifierType) - {IdentifierType.NOT_TAGGED},
)

KINDS: dict[str, UploadKind] = {kind.name: kind for kind in (COUPON, REDEEMED_COUPON)}


def kind_named(name: str) -> UploadKind:
    """The kind called ``name``; :class:`ValueError` for a name this version does not know."""
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"upload kind must be one of {', '.join(KINDS)}, not {name!r}") from None
