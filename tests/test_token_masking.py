"""A token logged through Airflow's real logging comes out as ``***``.

A task process configures logging with ``airflow.sdk.log.configure_logging`` (structlog with the secrets
masker's ``mask_logs`` processor, stdlib logging routed through it). A fresh Python process does the same
here, so the test sees what a task's log would hold: no mock stands in for the masker.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from capillary_provider.sandbox.dag_test import connection_json
from capillary_provider.sandbox.testing import SandboxClient

pytestmark = pytest.mark.integration

SCRIPT = textwrap.dedent(
    """
    import io, json, logging, sys
    from airflow.sdk.log import configure_logging
    out = io.BytesIO()
    configure_logging(json_output=True, output=out, colored_console_log=False)
    from capillary_provider.hooks.capillary import CapillaryHook
    hook = CapillaryHook("capillary_default")
    token = hook.get_token()
    hook.log.info("the token is %s", token)
    logging.getLogger("airflow.task").info("again: %s", token)
    logging.getLogger("airflow.task").info("header: %s", "Bearer " + token)
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.write(json.dumps({"token": token, "log": out.getvalue().decode()}))
    """
)


def test_a_token_logged_in_a_task_process_comes_out_as_stars(sandbox: SandboxClient) -> None:
    env = {**os.environ, "AIRFLOW_CONN_CAPILLARY_DEFAULT": connection_json(sandbox)}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    token, log = result["token"], result["log"]
    assert len(token) >= 8
    lines = [json.loads(line)["event"] for line in log.splitlines() if line.strip()]
    assert "the token is ***" in lines
    assert "again: ***" in lines
    assert "header: Bearer ***" in lines  # inside a longer string too
    assert token not in log + done.stderr
