"""Apache Airflow provider for Capillary (InTouch): load coupon codes into a coupon series."""

from __future__ import annotations

__version__ = "0.2.0"
