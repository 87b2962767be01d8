"""The operators' parameters: declared in each signature, literal values checked when the DAG is parsed,
templated values checked once rendered with the template named. Fast: nothing here reaches Capillary."""

from __future__ import annotations

import inspect
from datetime import timedelta
from typing import Any

import pytest

from capillary_provider.exceptions import CapillaryConfigError
from capillary_provider.operators._base import BaseUploadOperator
from capillary_provider.operators.coupon_upload import CouponUploadOperator
from capillary_provider.operators.redeemed_coupon_upload import RedeemedCouponUploadOperator

OPERATORS = [CouponUploadOperator, RedeemedCouponUploadOperator]
REQUIRED: dict[str, Any] = {"task_id": "upload", "coupon_series_id": 1001, "source": "coupons.csv"}


def coupon_operator(**options: Any) -> CouponUploadOperator:
    return CouponUploadOperator(**{**REQUIRED, "customer_identifier": "MOBILE", **options})


def redeem_operator(**options: Any) -> RedeemedCouponUploadOperator:
    return RedeemedCouponUploadOperator(**{**REQUIRED, "customer_identifier": "MOBILE", **options})


def parse_error(**options: Any) -> str:
    with pytest.raises(CapillaryConfigError) as info:
        coupon_operator(**options)
    return str(info.value)


def run_error(operator: BaseUploadOperator, values: dict[str, Any]) -> str:
    """Render ``operator``'s templates with ``params`` = ``values`` as Airflow does, then execute it."""
    operator.render_template_fields({"params": values})
    with pytest.raises(CapillaryConfigError) as info:
        operator.execute({})  # type: ignore[arg-type]
    return str(info.value)


# -- signatures ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("operator", OPERATORS, ids=lambda o: o.__name__)
def test_every_shared_parameter_is_declared_in_the_operators_own_signature(operator: type) -> None:
    shared = inspect.signature(BaseUploadOperator).parameters
    own = inspect.signature(operator).parameters
    for name, parameter in shared.items():
        assert name in own, name
        assert own[name].default == parameter.default, name
        assert own[name].annotation == parameter.annotation, name
    assert [p.name for p in own.values() if p.kind is inspect.Parameter.VAR_KEYWORD] == ["kwargs"]


@pytest.mark.parametrize("operator", OPERATORS, ids=lambda o: o.__name__)
def test_every_declared_parameter_is_documented(operator: type) -> None:
    names = [name for name in inspect.signature(operator).parameters if name != "kwargs"]
    assert [name for name in names if f":param {name}:" not in (operator.__doc__ or "")] == []


def test_a_misspelled_keyword_fails_when_the_dag_is_parsed_naming_the_right_one() -> None:
    assert parse_error(customer_identifer_column=0) == (
        "CouponUploadOperator has no parameter customer_identifer_column (did you mean customer_identifier_column?)."
        " Its parameters are listed in docs/operators.md."
    )


def test_airflows_own_arguments_still_pass_through() -> None:
    operator = coupon_operator(retries=3, retry_delay=timedelta(seconds=5), pool="capillary")
    assert (operator.retries, operator.pool) == (3, "capillary")


# -- literal values, at parse time --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"coupon_series_id": "abc"}, "coupon_series_id must be a positive whole number, not 'abc'"),
        ({"coupon_series_id": 0}, "coupon_series_id must be a positive whole number, not 0"),
        ({"coupon_series_id": 12.5}, "coupon_series_id must be a positive whole number, not 12.5"),
        (
            {"max_error_rows": "ten"},
            "max_error_rows must be a whole number of rows, 0 or more, or None for no limit, not 'ten'",
        ),
        (
            {"max_error_rows": -1},
            "max_error_rows must be a whole number of rows, 0 or more, or None for no limit, not -1",
        ),
        (
            {"max_error_ratio": 1.5},
            "max_error_ratio must be a fraction between 0 and 1 (0.01 = 1 %), or None for no limit, not 1.5",
        ),
        (
            {"max_error_ratio": "1%"},
            "max_error_ratio must be a fraction between 0 and 1 (0.01 = 1 %), or None for no limit, not '1%'",
        ),
        (
            {"invalid_rows": "skip", "rejected_rows_to": "rejected.csv", "max_skipped_rows": True},
            "max_skipped_rows must be a whole number of rows, 0 or more, or None for no limit, not True",
        ),
        ({"batch_size": 0}, "batch_size must be a whole number of rows, at least 1, not 0"),
        ({"poll_interval": "30s"}, "poll_interval must be a positive number of seconds (or a timedelta), not '30s'"),
        (
            {"timeout": timedelta(0)},
            "timeout must be a positive number of seconds (or a timedelta), not datetime.timedelta(0)",
        ),
        (
            {"customer_identifier_column": -1},
            "customer_identifier_column must be 0 or more (zero-based: 0 is the first column), not -1",
        ),
        ({"coupon_code_column": "second"}, "coupon_code_column must be a zero-based column number, not 'second'"),
        (
            {"customer_identifier": "PHONE"},
            "customer_identifier must be one of MOBILE, EMAIL, EXTERNAL_ID, USER_ID, NOT_TAGGED, not 'PHONE'",
        ),
        ({"archive_mode": "moved", "archive_to": "done/"}, 'archive_mode must be "move" or "copy", not \'moved\''),
        ({"has_header": "no"}, "has_header must be True, False or None, not 'no'"),
        ({"validate": "yes"}, "validate must be True or False, not 'yes'"),
        ({"dry_run": 1}, "dry_run must be True or False, not 1"),
    ],
    ids=lambda value: next(iter(value)) if isinstance(value, dict) else "",
)
def test_a_wrong_literal_fails_when_the_dag_is_parsed_with_the_parameter_named(
    options: dict[str, Any], message: str
) -> None:
    assert parse_error(**options) == message


def test_identifier_names_are_understood_in_any_case() -> None:
    assert coupon_operator(customer_identifier=" mobile").customer_identifier == "MOBILE"
    redeem = redeem_operator(customer_identifier="email", coupon_identifier="coupon_id")
    assert (redeem.customer_identifier, redeem.coupon_identifier) == ("EMAIL", "COUPON_ID")


def test_the_redeemed_operator_checks_its_own_parameters_at_parse_time() -> None:
    with pytest.raises(CapillaryConfigError) as info:
        redeem_operator(coupon_identifier="CODE")
    assert str(info.value) == "coupon_identifier must be one of COUPON_CODE, COUPON_ID, not 'CODE'"
    with pytest.raises(CapillaryConfigError) as info:
        redeem_operator(upload_headers={"mobile": "first"})
    assert str(info.value) == (
        "upload_headers must map each column key to a zero-based column number ('mobile' has 'first'),"
        " not {'mobile': 'first'}"
    )


def test_numbers_and_durations_are_normalized() -> None:
    operator = coupon_operator(timeout=timedelta(minutes=2), poll_interval=5, customer_identifier_column=0)
    assert (operator.timeout, operator.poll_interval, operator.coupon_series_id) == (120.0, 5.0, "1001")


# -- templates, once rendered -------------------------------------------------------------------------


def test_a_template_is_not_judged_at_parse_time() -> None:
    operator = coupon_operator(coupon_series_id="{{ params.series }}", customer_identifier="{{ params.kind }}")
    assert operator.coupon_series_id == "{{ params.series }}"


@pytest.mark.parametrize("rendered", ["", "None"])
def test_an_empty_rendered_series_id_names_the_template_that_gave_it(rendered: str) -> None:
    operator = coupon_operator(coupon_series_id="{{ params.series }}")
    assert run_error(operator, {"series": rendered}) == (
        f'coupon_series_id rendered to {rendered!r} from template "{{{{ params.series }}}}"; it must be a positive'
        " whole number. Fix the template or what it reads."
    )


def test_a_rendered_column_that_is_not_a_number_names_the_template() -> None:
    operator = coupon_operator(customer_identifier_column="{{ params.column }}")
    assert run_error(operator, {"column": "mobile"}) == (
        "customer_identifier_column rendered to 'mobile' from template \"{{ params.column }}\"; it must be a"
        " zero-based column number. Fix the template or what it reads."
    )


def test_a_rendered_identifier_is_understood_in_any_case_too() -> None:
    operator = coupon_operator(customer_identifier="{{ params.kind }}", coupon_code_column="{{ params.code }}")
    operator.render_template_fields({"params": {"kind": "mobile", "code": "1"}})
    operator.check_parameters(rendered=True)
    assert (operator.customer_identifier, operator.coupon_code_column) == ("MOBILE", 1)


def test_a_redeemed_operators_rendered_identifier_names_its_template() -> None:
    operator = redeem_operator(coupon_identifier="{{ params.coupon }}")
    assert run_error(operator, {"coupon": "code"}) == (
        "coupon_identifier rendered to 'code' from template \"{{ params.coupon }}\"; it must be one of COUPON_CODE,"
        " COUPON_ID. Fix the template or what it reads."
    )


def test_a_template_in_a_parameter_airflow_does_not_render_fails_at_parse_time() -> None:
    assert parse_error(batch_size="{{ params.size }}") == (
        "batch_size must be a whole number of rows, at least 1, not '{{ params.size }}'"
    )


def test_an_xcomarg_is_checked_once_resolved_not_at_parse_time() -> None:
    from airflow.sdk import DAG, task

    with DAG("series_from_a_task"):

        @task
        def create_series() -> str:
            return ""

        operator = coupon_operator(coupon_series_id=create_series())
    assert not isinstance(operator.coupon_series_id, (int, str))
