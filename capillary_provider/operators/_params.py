"""The upload operators' parameter checks: literal values when the DAG is parsed, templates once rendered.

A DAG author learns of a wrong literal (``max_error_rows="ten"``, ``batch_size=0``, ``customer_identifier=
"PHONE"``) when the DAG file is parsed, not hours later in a run. A value Airflow renders later (a string
holding ``{{``, or an ``XComArg``) cannot be judged then: it is checked at the start of ``execute``, after
rendering, and the message names the parameter, the value it rendered to and the template that gave it,
because the template, not the value, is what the author has to fix.

Each check takes the value and returns it normalized (``"mobile"`` -> ``"MOBILE"``, ``"3"`` -> ``3``), or
raises :class:`ValueError` with the rule the value breaks (``"must be ..."``); :func:`checked` turns that
into a :class:`~capillary_provider.exceptions.CapillaryConfigError`, which Airflow does not retry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseOperator, XComArg

from capillary_provider.coupon_file.normalize import delimiter_of
from capillary_provider.exceptions import CapillaryConfigError
from capillary_provider.identifiers import CouponIdentifier, IdentifierType

Check = Callable[[Any], Any]


def is_deferred(value: object) -> bool:
    """True for a value Airflow renders later: a string holding a template, or an ``XComArg``."""
    return (isinstance(value, str) and "{{" in value) or isinstance(value, XComArg)


def checked(name: str, value: Any, check: Check, template: str | None = None) -> Any:
    """``check(value)``; a :class:`CapillaryConfigError` naming ``name`` (and ``template``) if it fails."""
    try:
        return check(value)
    except ValueError as exc:
        if template is None:
            raise CapillaryConfigError(f"{name} {exc}, not {value!r}") from None
        raise CapillaryConfigError(
            f'{name} rendered to {value!r} from template "{template}"; it {exc}. Fix the template or what it reads.'
        ) from None


def check_all(task: BaseOperator, checks: Mapping[str, Check], *, rendered: bool, templates: dict[str, str]) -> None:
    """Check and normalize ``task``'s parameters in place: literals at parse time (a template's text is kept in
    ``templates``), all of them once rendered, naming the template a wrong value came from."""
    for name, check in checks.items():
        value = getattr(task, name)
        if not rendered and name in task.template_fields and is_deferred(value):
            if isinstance(value, str):
                templates[name] = value
            continue
        setattr(task, name, checked(name, value, check, templates.get(name)))


def check_choices(*, invalid_rows: str, rejected_rows_to: object, archive_mode: str, delimiter: str) -> None:
    """The upload operators' choices, never templated, so checked as the operator is made."""
    if invalid_rows not in ("fail", "skip"):
        raise CapillaryConfigError(f'invalid_rows must be "fail" or "skip", not {invalid_rows!r}')
    if invalid_rows == "skip" and not rejected_rows_to:
        raise CapillaryConfigError('invalid_rows="skip" needs rejected_rows_to: skipped rows are never dropped')
    if archive_mode not in ("move", "copy"):
        raise CapillaryConfigError(f'archive_mode must be "move" or "copy", not {archive_mode!r}')
    try:
        delimiter_of(delimiter)
    except ValueError as exc:
        raise CapillaryConfigError(str(exc)) from None


def _whole(value: Any, *, minimum: int, rule: str) -> int:
    """An int (or, once rendered, its text) of at least ``minimum``; never a bool or a float."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(rule)
    text = str(value).strip()
    if not text.lstrip("-").isdigit() or int(text) < minimum:
        raise ValueError(rule)
    return int(text)


def series_id(value: Any) -> str:
    """``coupon_series_id`` as Capillary takes it: a positive whole number, as text."""
    return str(_whole(value, minimum=1, rule="must be a positive whole number"))


def batch_size(value: Any) -> int:
    return _whole(value, minimum=1, rule="must be a whole number of rows, at least 1")


def optional_count(value: Any) -> int | None:
    """A row count threshold (``max_error_rows``, ``max_skipped_rows``): 0 or more, or None for no limit."""
    if value is None:
        return None
    return _whole(value, minimum=0, rule="must be a whole number of rows, 0 or more, or None for no limit")


def column(value: Any) -> int | None:
    """A zero-based column index (an int, or the rendered text of one); None (or empty text) when not given."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().lstrip("-").isdigit():
        raise ValueError("must be a zero-based column number")
    if int(value) < 0:
        raise ValueError("must be 0 or more (zero-based: 0 is the first column)")
    return int(value)


def _number(value: Any, rule: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(rule)
    return float(value)


def ratio(value: Any) -> float | None:
    """``max_error_ratio``: a fraction between 0 and 1, or None for no limit."""
    rule = "must be a fraction between 0 and 1 (0.01 = 1 %), or None for no limit"
    if value is None:
        return None
    number = _number(value, rule)
    if not 0 <= number <= 1:
        raise ValueError(rule)
    return number


def seconds(value: Any) -> float:
    """``poll_interval`` and ``timeout``: a positive number of seconds (or a ``timedelta``)."""
    rule = "must be a positive number of seconds (or a timedelta)"
    number = value.total_seconds() if isinstance(value, timedelta) else _number(value, rule)
    if number <= 0:
        raise ValueError(rule)
    return number


def _one_of(names: list[str]) -> Check:
    """A value among ``names``, in any case: ``"mobile"`` is ``MOBILE``."""

    def check(value: Any) -> str:
        text = value.strip().upper() if isinstance(value, str) else value
        if text not in names:
            raise ValueError(f"must be one of {', '.join(names)}")
        return str(text)

    return check


def identifier(allowed: frozenset[IdentifierType] | None) -> Check:
    """A customer identifier type among ``allowed`` (None: any), in any case."""
    return _one_of([member.value for member in IdentifierType if allowed is None or member in allowed])


coupon_identifier = _one_of([member.value for member in CouponIdentifier])
"""``COUPON_CODE`` or ``COUPON_ID``, in any case."""


def header_map(value: Any) -> Mapping[str, int] | None:
    """``upload_headers``: column keys to zero-based column numbers, or None to read them from the header row."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        raise ValueError("must map column keys to zero-based column numbers, e.g. {'mobile': 0}")
    columns: dict[str, int] = {}
    for key, index in value.items():
        number = column(index) if isinstance(index, int) or (isinstance(index, str) and index.isdigit()) else None
        if number is None:
            raise ValueError(f"must map each column key to a zero-based column number ({key!r} has {index!r})")
        columns[key] = number
    return columns


def optional_bool(value: Any) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise ValueError("must be True, False or None")
    return value


def flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be True or False")
    return value


SHARED_CHECKS: dict[str, Check] = {
    "coupon_series_id": series_id,
    "batch_size": batch_size,
    "poll_interval": seconds,
    "timeout": seconds,
    "max_error_rows": optional_count,
    "max_error_ratio": ratio,
    "max_skipped_rows": optional_count,
    "has_header": optional_bool,
    **{name: flag for name in ("validate", "wait_for_completion", "deferrable", "check_series")},
}
"""The check of each parameter every upload operator shares (kinds add theirs in ``parameter_checks()``)."""
