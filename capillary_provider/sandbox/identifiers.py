"""Which customer identifier values the sandbox accepts, per ``customerIdentifier`` type."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

IDENTIFIER_CHECKS: dict[str, Callable[[str], bool]] = {
    "MOBILE": lambda v: re.fullmatch(r"\+?\d{8,15}", v) is not None,
    "EMAIL": lambda v: re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s.]+", v) is not None,
    "USER_ID": lambda v: re.fullmatch(r"\d+", v) is not None,
    "EXTERNAL_ID": lambda v: bool(v),
}
IDENTIFIER_TYPES = frozenset({*IDENTIFIER_CHECKS, "NOT_TAGGED"})
