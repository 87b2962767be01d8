"""Names that moved between the Airflow 3 releases we support (3.1 to 3.3). Import them from here.

mypy checks this package against one Airflow at a time, and each of the two import paths below is
missing on one of them; so type checkers see the small declarations under ``TYPE_CHECKING`` (the
real classes have these bases), and the running code imports the real names.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:

    class AirflowException(Exception):
        """Airflow's base exception."""

    class AirflowFailException(AirflowException):
        """Fail the task without spending its retries."""

    class AirflowSensorTimeout(AirflowException):
        """A sensor ran out of time; fails without retries (skipped with ``soft_fail``)."""

    class AirflowSkipException(AirflowException):
        """Mark the task skipped."""

    conf: Any
else:
    try:  # Airflow >= 3.2
        from airflow.sdk import conf
        from airflow.sdk.exceptions import (
            AirflowException,
            AirflowFailException,
            AirflowSensorTimeout,
            AirflowSkipException,
        )
    except ImportError:  # Airflow 3.1
        from airflow.configuration import conf
        from airflow.exceptions import (
            AirflowException,
            AirflowFailException,
            AirflowSensorTimeout,
            AirflowSkipException,
        )


def stats() -> Any:
    """Airflow's ``Stats`` (StatsD or OpenTelemetry, per ``[metrics]``), imported on first use.

    Airflow 3.3 has it in the task SDK (``airflow.sdk.observability.stats``; ``airflow.stats`` is a
    deprecated shim there), 3.2 in ``airflow.observability.stats``, 3.1 in ``airflow.stats``.
    """
    for module in ("airflow.sdk.observability.stats", "airflow.observability.stats", "airflow.stats"):
        try:
            return importlib.import_module(module).Stats
        except ImportError:
            continue
    raise ImportError("Airflow's Stats is in none of airflow.sdk.observability.stats, airflow.stats")


__all__ = ["AirflowException", "AirflowFailException", "AirflowSensorTimeout", "AirflowSkipException", "conf", "stats"]
