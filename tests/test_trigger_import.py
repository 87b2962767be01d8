"""Importing the trigger module on the triggerer's event loop loads no HTTP library (issue: a blocked loop)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HTTP_MODULES = ("requests", "urllib3", "requests_toolbelt", "tenacity", "capillary_provider.hooks.capillary")

PROBE = """
import json, sys
import airflow.triggers.base
before = set(sys.modules)
import capillary_provider.triggers.coupon_upload
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def _modules_loaded_by_the_trigger_import() -> list[str]:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=120)
    loaded: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return loaded


@pytest.mark.slow
def test_importing_the_trigger_loads_no_http_library_and_not_the_hook() -> None:
    loaded = _modules_loaded_by_the_trigger_import()
    assert "capillary_provider.triggers.coupon_upload" in loaded  # the probe measured the right import
    assert [name for name in loaded if name.split(".")[0] in HTTP_MODULES or name in HTTP_MODULES] == []


def test_the_trigger_loads_the_hook_when_its_first_wait_starts() -> None:
    import asyncio

    from capillary_provider import polling

    hook = asyncio.run(polling.new_hook("capillary_default"))
    assert type(hook).__module__ == "capillary_provider.hooks.capillary"
    assert hook.retry_limit == 1  # one attempt per poll: the polls are the retries
