"""Names that moved between the Airflow 3 releases we support (3.1 to 3.3). Import them from here."""

from __future__ import annotations

try:  # Airflow >= 3.2
    from airflow.sdk import conf
    from airflow.sdk.exceptions import AirflowException, AirflowFailException
except ImportError:  # Airflow 3.1
    from airflow.configuration import conf  # type: ignore[assignment]
    from airflow.exceptions import (  # type: ignore[attr-defined,no-redef]
        AirflowException,
        AirflowFailException,
    )

__all__ = ["AirflowException", "AirflowFailException", "conf"]
