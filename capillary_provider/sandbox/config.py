"""Configuration of the Capillary sandbox."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path


def _default_data_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="capillary-sandbox-"))


@dataclass
class SandboxConfig:
    """Settings of one sandbox instance.

    ``faults`` holds fault rules (dicts in the JSON form accepted by ``POST /_sandbox/faults``)
    loaded at start. ``existing_codes`` are coupon codes treated as already present in every series.
    ``series_states`` maps series ids to a state of the series read (``unknown``, ``expired``,
    ``forbidden``; absent ids are ``valid``). ``series_codes`` are codes known in one series each (as if
    uploaded as ``NOT_TAGGED``), seeded at start and again after every reset.
    """

    key: str = "sandbox-key"
    secret: str = "sandbox-secret"
    token_ttl: float = 3600.0
    step_seconds: float = 1.0
    token_prefix: str = "sbx-tok-"
    data_dir: Path = field(default_factory=_default_data_dir)
    existing_codes: frozenset[str] = frozenset()
    faults: list[dict[str, object]] = field(default_factory=list)
    request_log_size: int = 10_000
    series_states: dict[int, str] = field(default_factory=dict)
    series_codes: dict[int, frozenset[str]] = field(default_factory=dict)

    @staticmethod
    def read_codes_file(path: Path) -> frozenset[str]:
        """Read one coupon code per line (blank lines ignored)."""
        with path.open(encoding="utf-8") as handle:
            return frozenset(line.strip() for line in handle if line.strip())
