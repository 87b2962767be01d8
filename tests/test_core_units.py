"""Small exact checks that mutation testing showed missing: the token cache, a job read from the API, the
verdict's messages, the kind lookup, a redeemed job in a trigger event."""

from __future__ import annotations

import pytest

import capillary_provider.hooks._transport as transport
from capillary_provider.hooks._transport import TokenCache
from capillary_provider.jobs import UploadJob
from capillary_provider.kinds import COUPON, REDEEMED_COUPON, kind_named
from capillary_provider.verdict import FailurePolicy
from capillary_provider.waiting import EVENT_DONE, decode_event, encode_event

KEY = ("https://api", "key", "digest")


def test_token_cache_keeps_a_token_until_a_fifth_of_its_ttl_before_expiry(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(transport.time, "monotonic", lambda: now[0])
    cache = TokenCache()
    assert cache.get(KEY) is None
    cache.put(KEY, "t1", ttl=100.0)  # lead min(120, 20) = 20 s: renewed from 80 s on
    now[0] = 1079.9
    assert cache.get(KEY) == "t1"
    now[0] = 1080.0
    assert cache.get(KEY) is None
    cache.put(KEY, "t2", ttl=3600.0)  # lead 120 s
    now[0] = 1080.0 + 3480.0 - 0.1
    assert cache.get(KEY) == "t2"
    now[0] = 1080.0 + 3480.0
    assert cache.get(KEY) is None


def test_token_cache_discard_leaves_a_token_renewed_by_another_hook() -> None:
    cache = TokenCache()
    cache.put(KEY, "new", ttl=3600.0)
    cache.discard(KEY, "old")
    assert cache.get(KEY) == "new"
    cache.discard(KEY, "new")
    assert cache.get(KEY) is None
    cache.put(KEY, "new", ttl=3600.0)
    cache.discard(KEY, None)
    assert cache.get(KEY) is None
    cache.discard(("other", "", ""), "x")  # nothing cached: no error
    cache.discard(("other", "", ""), "")


def test_job_from_api_reads_every_field() -> None:
    item = {
        "jobId": "35",
        "uploadStatus": "FINISHED",
        "uploadedFileName": "a.csv",
        "actualRowCount": "10",
        "totalUploadedCount": 8,
        "errorCount": 2,
        "errorFileUrl": "e",
        "successFileUrl": "s",
        "createdOn": 5,
        "updatedOn": "",
    }
    assert UploadJob.from_api(item) == UploadJob(35, "FINISHED", "a.csv", 10, 8, 2, "e", "s", 5, None, COUPON.name)
    bare = UploadJob.from_api({"jobId": 1})
    assert (bare.status, bare.total_uploaded_count, bare.error_count, bare.success_file_url) == ("", 0, 0, None)
    redeemed = UploadJob.from_api({"jobId": 2, "uploadRedeemedCouponStatus": "COMPLETED"}, REDEEMED_COUPON)
    assert (redeemed.status, redeemed.kind, redeemed.is_terminal) == ("COMPLETED", REDEEMED_COUPON.name, True)
    assert UploadJob.from_dict(redeemed.to_dict(), REDEEMED_COUPON) == redeemed


def test_decode_event_reads_jobs_of_the_given_kind() -> None:
    job = UploadJob(2, "COMPLETED", kind=REDEEMED_COUPON.name)
    [decoded] = decode_event(encode_event(EVENT_DONE, [job], "m"), REDEEMED_COUPON)
    assert decoded.kind == REDEEMED_COUPON.name


def test_failure_messages_exactly() -> None:
    errored = [UploadJob(1, "ERRORED"), UploadJob(2, "ERRORED")]
    assert FailurePolicy().failure(errored) == (
        "Capillary reports upload jobs 1, 2 ERRORED. job 1 ERRORED: 0 rows, 0 accepted, 0 rejected; job 2 ERRORED: "
        "0 rows, 0 accepted, 0 rejected. A retry of this task attaches to the same jobs and fails again: fix the "
        "cause, then start a new DAG run (a new run id) to upload the file anew."
    )
    rejected = [UploadJob(3, "FINISHED", actual_row_count=1, error_count=1)]
    assert FailurePolicy(max_error_rows=None, max_error_ratio=0.5).failure(rejected) == (
        "Capillary rejected 1 of 1 row (100.00%), more than max_error_ratio=50.00%. "
        "job 3 FINISHED: 1 rows, 0 accepted, 1 rejected"
    )
    many = [UploadJob(4, "FINISHED", actual_row_count=4, error_count=1)]
    assert FailurePolicy(max_error_rows=None, max_error_ratio=0.2).failure(many) == (
        "Capillary rejected 1 of 4 rows (25.00%), more than max_error_ratio=20.00%. "
        "job 4 FINISHED: 4 rows, 0 accepted, 1 rejected"
    )
    assert FailurePolicy(max_error_rows=0).failure([UploadJob(5, "FINISHED", actual_row_count=2, error_count=2)]) == (
        "Capillary rejected 2 of 2 rows, more than max_error_rows=0. job 5 FINISHED: 2 rows, 0 accepted, 2 rejected"
    )


def test_kind_named_names_the_kinds_it_knows() -> None:
    assert kind_named("coupon") is COUPON
    with pytest.raises(ValueError, match=r"^upload kind must be one of coupon, redeemed_coupon, not 'x'$"):
        kind_named("x")


def test_overall_status_of_no_jobs_and_of_unknown_statuses() -> None:
    assert COUPON.overall_status([]) == ""
    assert COUPON.overall_status(["STARTED", "SOMETHING_NEW"]) == "SOMETHING_NEW"
    assert COUPON.overall_status(["FINISHED", "VALIDATED", "STARTED"]) == "STARTED"
