"""Fixtures of the sandbox's own tests. Each module runs one sandbox, ``server``, knowing the module's
``existing_codes`` (a module needing other options, such as series states, starts its own); these hand it
to each test emptied and back at the module's pace."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from capillary_provider.sandbox.testing import SandboxClient, running_sandbox

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(scope="module")
def step_seconds() -> float:
    """How long a job of the module's sandbox stays in each state; a module overrides it for another pace."""
    return 0.05


@pytest.fixture(scope="module")
def existing_codes() -> str | None:
    """The text of the sandbox's ``--existing-codes`` file (None: no file); a module overrides it."""
    return None


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, step_seconds: float, existing_codes: str | None
) -> Iterator[SandboxClient]:
    """The module's sandbox, started once for the module at ``step_seconds`` with ``existing_codes``."""
    codes = None
    if existing_codes is not None:
        codes = tmp_path_factory.mktemp("codes") / "existing.txt"
        codes.write_text(existing_codes, encoding="utf-8")
    with running_sandbox(step_seconds=step_seconds, existing_codes=codes) as client:
        yield client


@pytest.fixture
def sbx(server: SandboxClient, step_seconds: float) -> SandboxClient:
    """The module's sandbox with no jobs, tokens, faults or log left by an earlier test, at ``step_seconds``."""
    server.reset()
    server.set_step_seconds(step_seconds)
    return server


@pytest.fixture
def token(sbx: SandboxClient) -> str:
    """A token the sandbox issued for this test."""
    return sbx.token()
