"""A logger for unit tests that formats every message at once, so a wrong argument fails the test."""

from __future__ import annotations

from typing import Any


class RecordingLog:
    """Stands in for a task's, hook's or trigger's logger: ``lines`` holds ``(level, formatted message)``."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def info(self, message: str, *args: Any) -> None:
        self.lines.append(("info", message % args))

    def warning(self, message: str, *args: Any) -> None:
        self.lines.append(("warning", message % args))

    @property
    def messages(self) -> list[str]:
        """The formatted messages, whatever their level."""
        return [line for _, line in self.lines]
