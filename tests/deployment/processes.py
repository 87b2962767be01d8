"""Processes of the deployment test: start each in its own process group, kill or stop whole trees, tail logs."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import psutil

T = TypeVar("T")

_budget_end: list[float] = []
"""When set, the monotonic time by which the whole deployment test must be done: no wait goes past it."""


def set_budget(seconds: float | None) -> None:
    _budget_end.clear()
    if seconds is not None:
        _budget_end.append(time.monotonic() + seconds)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def alive(pid: int) -> bool:
    """True while ``pid`` is a running process (a zombie waiting to be reaped counts as gone)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def tree(pid: int) -> list[psutil.Process]:
    """The process and all its descendants (Airflow's task processes run in process groups of their own)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def wait_for(what: str, check: Callable[[], T | None], timeout: float, interval: float = 0.5) -> T:
    """Call ``check`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    over_budget = bool(_budget_end) and _budget_end[0] < deadline
    if over_budget:
        deadline = _budget_end[0]
    last_error: Exception | None = None
    while True:
        try:
            result = check()
        except AssertionError:
            raise
        except Exception as exc:  # a component still starting, a connection refused: try again
            last_error, result = exc, None
        if result:
            return result
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            if over_budget:
                raise TimeoutError(f"the deployment test's time budget ran out waiting for {what}{detail}")
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)


@dataclass
class Component:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    stop_signal: int = signal.SIGTERM
    stop_last: bool = False
    expected_dead: bool = False
    started: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.process.pid

    def tail(self, lines: int = 40) -> str:
        if not self.log.exists():
            return "(no log)"
        text = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(text[-lines:]) or "(empty log)"

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""


class Processes:
    """Every process the test starts, to stop them all (also on failure) and to show their logs."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.components: list[Component] = []
        self._seen: set[int] = set()

    def start(
        self,
        name: str,
        command: list[str],
        env: dict[str, str],
        *,
        user: str | None = None,
        cwd: Path | None = None,
        stop_signal: int = signal.SIGTERM,
        stop_last: bool = False,
    ) -> Component:
        log = self.log_dir / f"{name}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                user=user,
                start_new_session=True,  # its own process group: stop or kill it whole
            )
        component = Component(name, process, log, stop_signal, stop_last)
        self.components.append(component)
        return component

    def get(self, name: str) -> Component:
        return next(c for c in self.components if c.name == name)

    def check_running(self) -> None:
        """Fail at once, with its log, when a component that should run has exited."""
        for component in self.components:
            if not component.expected_dead and component.process.poll() is not None:
                raise AssertionError(
                    f"{component.name} (pid {component.pid}) exited with code {component.process.returncode}:\n"
                    f"{component.tail(60)}"
                )

    def kill(self, component: Component) -> list[int]:
        """SIGKILL the component's whole tree at once (a crash); return the killed pids once they are gone."""
        component.expected_dead = True
        processes = tree(component.pid)
        pids = [p.pid for p in processes]
        groups = {_pgid(pid) for pid in pids} - {None, os.getpgid(0)}
        for group in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)  # type: ignore[arg-type]
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        component.process.wait(timeout=10)
        wait_for(f"the killed {component.name} processes {pids} to be gone", lambda: not any(map(alive, pids)), 10, 0.1)
        return pids

    def stop(self, components: list[Component], timeout: float = 15.0) -> None:
        """Send each its stop signal (to its group) at once, wait, then SIGKILL whatever is left of their trees."""
        trees = {}
        for component in components:
            component.expected_dead = True
            trees[component.name] = tree(component.pid)
            self._seen.update(p.pid for p in trees[component.name])
            if component.process.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(component.pid, component.stop_signal)
        deadline = time.monotonic() + timeout
        for component in components:
            with contextlib.suppress(subprocess.TimeoutExpired):
                component.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        for component in components:
            for process in trees[component.name]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                        process.kill()
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(component.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                component.process.wait(timeout=10)

    def stop_all(self) -> list[int]:
        """Stop every component (the ``stop_last`` ones after the others); return pids that were still alive."""
        for component in self.components:
            self._seen.update(p.pid for p in tree(component.pid))
        self.stop([c for c in self.components if not c.stop_last])
        self.stop([c for c in self.components if c.stop_last])
        leftovers = []
        for pid in sorted(self._seen):
            with contextlib.suppress(psutil.NoSuchProcess):
                process = psutil.Process(pid)
                if process.status() != psutil.STATUS_ZOMBIE and _started_by_us(process, self.components):
                    process.kill()
                    leftovers.append(pid)
        return leftovers

    def tails(self, lines: int = 40) -> str:
        parts = []
        for component in self.components:
            state = "running" if component.process.poll() is None else f"exited {component.process.returncode}"
            parts.append(f"----- {component.name} (pid {component.pid}, {state}): {component.log} -----")
            parts.append(component.tail(lines))
        return "\n".join(parts)


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _started_by_us(process: psutil.Process, components: list[Component]) -> bool:
    """A pid can be reused by an unrelated process: only kill one created after our first start."""
    try:
        first = min(c.started for c in components)
        age = time.time() - process.create_time()
        return age <= time.monotonic() - first + 5
    except psutil.Error:
        return False
