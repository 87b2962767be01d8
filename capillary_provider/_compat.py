"""Names that moved between the Airflow 3 releases we support (3.1 to 3.3). Import them from here."""

from __future__ import annotations

try:  # Airflow >= 3.2
    from airflow.sdk import conf
    from airflow.sdk.exceptions import AirflowException, AirflowFailException
except ImportError:  # Airflow 3.1
    from airflow.configuration import conf  # type: ignore[no-redef]
    from airflow.exceptions import AirflowException, AirflowFailException  # type: ignore[no-redef]

__all__ = ["AirflowException", "AirflowFailException", "conf"]
