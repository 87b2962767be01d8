"""One upload task per option family of the file contract, for tests/test_row_conservation_dag.py.

The test writes the source files and ``families.json`` (each family's operator kind and parameters)
into ``CAPILLARY_CONSERVATION_DIR``; this DAG builds one task from each, so the families are written
down once, in the test.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from airflow.sdk import DAG

from capillary_provider.operators.coupon_upload import CouponUploadOperator
from capillary_provider.operators.redeemed_coupon_upload import RedeemedCouponUploadOperator

KINDS = {"coupon": CouponUploadOperator, "redeemed": RedeemedCouponUploadOperator}

with DAG("capillary_row_conservation", schedule=None, catchup=False):
    folder = Path(os.environ["CAPILLARY_CONSERVATION_DIR"])
    for family in json.loads((folder / "families.json").read_text()):
        KINDS[family["kind"]](task_id=family["name"], **family["options"])
