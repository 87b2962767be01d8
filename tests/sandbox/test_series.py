"""The sandbox's coupon series read, ``GET /v2/coupon/series``, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
import requests

from capillary_provider.sandbox.testing import SandboxClient, SandboxStartError, running_sandbox

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.integration

SERIES_KEYS = {
    "id", "orgId", "description", "discountCode", "validTillDate", "clientHandlingType", "externalIssual",
    "numIssued", "numRedeemed", "numUploadedTotal", "numUploadedNonIssued", "maxCreate",
}  # fmt: skip
MILLIS = "1735689600000"


@pytest.fixture(scope="module")
def step_seconds() -> float:
    return 0.01


@pytest.fixture(scope="module")
def server(step_seconds: float) -> Iterator[SandboxClient]:
    with running_sandbox(step_seconds=step_seconds, series_states={50: "expired", 51: "unknown"}) as client:
        yield client


def read(sbx: SandboxClient, token: str | None, ids: str | None) -> requests.Response:
    return requests.get(
        f"{sbx.url}/v2/coupon/series",
        params={} if ids is None else {"ids": ids},
        headers={} if token is None else {"X-CAP-API-OAUTH-TOKEN": token},
        timeout=10,
    )


def entities(sbx: SandboxClient, token: str, ids: str) -> list[dict[str, Any]]:
    response = read(sbx, token, ids)
    assert response.status_code == 200, response.text
    assert response.json()["warnings"] == []
    result: list[dict[str, Any]] = response.json()["entity"]
    return result


def valid_till(series: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(series["validTillDate"])


def test_every_positive_id_is_a_valid_series_until_far_in_the_future(sbx: SandboxClient, token: str) -> None:
    response = read(sbx, token, "42")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"entity", "warnings"}
    [series] = body["entity"]
    assert set(series) >= SERIES_KEYS
    assert series["id"] == 42
    assert series["validTillDate"] == "2099-12-31T23:59:59+05:30"
    assert valid_till(series).utcoffset() is not None
    assert valid_till(series) > datetime.now(UTC)
    assert series["externalIssual"] is False
    assert (series["numIssued"], series["numRedeemed"], series["numUploadedTotal"]) == (0, 0, 0)


def test_several_ids_answer_in_order_once_each(sbx: SandboxClient, token: str) -> None:
    assert [s["id"] for s in entities(sbx, token, "3,1, 2,3")] == [3, 1, 2]
    both = requests.get(
        f"{sbx.url}/v2/coupon/series?ids=4&ids=5", headers={"X-CAP-API-OAUTH-TOKEN": token}, timeout=5
    ).json()
    assert [s["id"] for s in both["entity"]] == [4, 5]


def test_unknown_series_is_absent_from_entity(sbx: SandboxClient, token: str) -> None:
    sbx.set_series(60, state="unknown")
    assert entities(sbx, token, "60") == []
    assert [s["id"] for s in entities(sbx, token, "59,60,61")] == [59, 61]


def test_expired_series_has_a_valid_till_date_in_the_past(sbx: SandboxClient, token: str) -> None:
    result = sbx.set_series(61, state="expired")
    [series] = entities(sbx, token, "61")
    assert valid_till(series) < datetime.now(UTC)
    assert result == {"ok": True, "state": "expired", "series": series}


def test_forbidden_series_makes_the_read_answer_403(sbx: SandboxClient, token: str) -> None:
    sbx.set_series(62, state="forbidden")
    response = read(sbx, token, "1,62")
    assert response.status_code == 403
    assert response.json()["errors"][0]["code"] == 403
    assert read(sbx, token, "1").status_code == 200
    assert sbx.set_series(62, state="valid")["series"]["id"] == 62
    assert read(sbx, token, "62").status_code == 200


def test_fields_can_be_overridden(sbx: SandboxClient, token: str) -> None:
    sbx.set_series(63, clientHandlingType="EXTERNAL", externalIssual=True, validTillDate="2031-01-01T00:00:00+00:00")
    [series] = entities(sbx, token, "63")
    assert (series["clientHandlingType"], series["externalIssual"]) == ("EXTERNAL", True)
    assert series["validTillDate"] == "2031-01-01T00:00:00+00:00"
    assert sbx.series_states() == {
        "50": {"state": "expired", "fields": {}},
        "51": {"state": "unknown", "fields": {}},
        "63": {
            "state": "valid",
            "fields": {
                "clientHandlingType": "EXTERNAL",
                "externalIssual": True,
                "validTillDate": "2031-01-01T00:00:00+00:00",
            },
        },
    }


@pytest.mark.parametrize(
    "body",
    [{"state": "gone"}, {}, {"state": "valid", "fields": {"colour": "red"}}, {"state": "valid", "fields": [1]}],
)
def test_bad_series_control_bodies_are_422(sbx: SandboxClient, body: dict[str, Any]) -> None:
    response = requests.post(f"{sbx.url}/_sandbox/series/64", data=json.dumps(body), timeout=5)
    assert response.status_code == 422
    assert "64" not in sbx.series_states()


def test_cli_series_state_preloads_states_and_reset_restores_them(sbx: SandboxClient, token: str) -> None:
    assert valid_till(entities(sbx, token, "50")[0]) < datetime.now(UTC)
    assert entities(sbx, token, "51") == []
    sbx.set_series(50, state="valid")
    sbx.set_series(52, state="unknown")
    sbx.reset()
    token = sbx.token()
    assert valid_till(entities(sbx, token, "50")[0]) < datetime.now(UTC)
    assert [s["id"] for s in entities(sbx, token, "52")] == [52]


def test_counts_follow_uploads_seeds_and_redemptions(sbx: SandboxClient, token: str) -> None:
    auth = {"X-CAP-API-OAUTH-TOKEN": token}
    for identifier, rows in (("MOBILE", "m,c\n919876543210,C1\n919876543211,C2\n"), ("NOT_TAGGED", "c\nC3\nC1\n")):
        response = requests.post(
            f"{sbx.url}/coupon/api/v1/upload/file/70",
            headers=auth,
            files={"file": ("c.csv", rows, "text/csv")},
            data={"customerIdentifier": identifier, "customerIdentifierColumn": "0"},
            timeout=5,
        )
        sbx.wait_for_job(response.json()["result"]["uploadJobStatuses"][0]["jobId"])
    sbx.seed_codes(70, ["C4", ("C5", "a@example.com")], customer_identifier="EMAIL")
    response = requests.post(
        f"{sbx.url}/coupon/api/v1/upload/redeemFile/70",
        headers=auth,
        files={"file": ("r.csv", f"d,t,m,c\n{MILLIS},t,919876543210,C1\n{MILLIS},t,919876543210,NONE\n", "text/csv")},
        data={
            "customerIdentifier": "MOBILE",
            "couponIdentifier": "COUPON_CODE",
            "uploadHeaders": json.dumps({"redeemedDateInMillis": 0, "redeemedAt": 1, "mobile": 2, "couponCode": 3}),
        },
        timeout=5,
    )
    sbx.wait_for_job(response.json()["result"]["redeemUploadJobStatuses"][0]["jobId"])
    [series] = entities(sbx, token, "70")
    counts = {key: series[key] for key in ("numUploadedTotal", "numIssued", "numUploadedNonIssued", "numRedeemed")}
    assert counts == {"numUploadedTotal": 5, "numIssued": 3, "numUploadedNonIssued": 2, "numRedeemed": 1}
    sbx.reset()
    assert entities(sbx, sbx.token(), "70")[0]["numUploadedTotal"] == 0


@pytest.mark.parametrize("ids", [None, "", "abc", "1,0", "1,-2"])
def test_missing_or_bad_ids_are_400(sbx: SandboxClient, token: str, ids: str | None) -> None:
    response = read(sbx, token, ids)
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == 400


def test_token_is_checked(sbx: SandboxClient) -> None:
    response = read(sbx, None, "1")
    assert response.status_code == 401
    assert response.json()["message"] == "Invalid token"
    sbx.add_fault("token", "expire_tokens", seconds=0)
    assert read(sbx, sbx.token(), "1").status_code == 498


# --- faults ---------------------------------------------------------------------------------------


def test_series_status_fault_uses_the_v2_error_form(sbx: SandboxClient, token: str) -> None:
    sbx.add_fault("series", "status", status=503, retry_after=2)
    response = read(sbx, token, "1")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "2"
    assert response.json() == {
        "entity": None,
        "errors": [{"code": 503, "message": "Service unavailable"}],
        "warnings": [],
    }
    assert read(sbx, token, "1").status_code == 200


def test_series_malformed_json_and_success_false_faults(sbx: SandboxClient, token: str) -> None:
    sbx.add_fault("series", "malformed_json")
    sbx.add_fault("series", "success_false")
    with pytest.raises(ValueError, match=r"Expecting|Unterminated|Invalid"):
        read(sbx, token, "1").json()
    response = read(sbx, token, "1")
    assert response.status_code == 200
    assert response.json()["entity"] is None
    assert response.json()["errors"] == [{"code": 500, "message": "Injected failure"}]


def test_series_drop_fault_is_a_connection_error(sbx: SandboxClient, token: str) -> None:
    sbx.add_fault("series", "drop_before_body")
    with pytest.raises(requests.exceptions.ConnectionError):
        read(sbx, token, "1")
    assert sbx.requests(path_contains="/v2/coupon/series")[-1]["dropped"] == "before_body"


def test_series_fault_rules_reject_upload_only_actions(sbx: SandboxClient) -> None:
    rule = {"endpoint": "series", "action": {"type": "job_errored"}}
    assert requests.post(f"{sbx.url}/_sandbox/faults", json=rule, timeout=5).status_code == 422


def test_invalid_cli_series_state_fails_start_up() -> None:
    with pytest.raises(SandboxStartError, match="invalid --series-state"), running_sandbox(series_states={5: "gone"}):
        pass
