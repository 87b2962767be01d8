"""The Airflow REST API as the test drives it: a token from the simple auth manager, runs, task instances."""

from __future__ import annotations

from typing import Any

import requests


class AirflowApi:
    def __init__(self, url: str, timeout: float = 20.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.trust_env = False  # loopback only, never through a proxy

    def login(self) -> None:
        """``POST /auth/token``; with ``simple_auth_manager_all_admins`` any name is an admin."""
        response = self.session.post(
            f"{self.url}/auth/token", json={"username": "admin", "password": "admin"}, timeout=self.timeout
        )
        response.raise_for_status()
        self.session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def _get(self, path: str, **params: Any) -> Any:
        response = self.session.get(f"{self.url}/api/v2/{path}", params=params, timeout=self.timeout)
        response.raise_for_status()
        return response.json()

    def health(self) -> dict[str, Any]:
        response = self.session.get(f"{self.url}/api/v2/monitor/health", timeout=self.timeout)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def dag(self, dag_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._get(f"dags/{dag_id}")
        return result

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        response = self.session.post(
            f"{self.url}/api/v2/dags/{dag_id}/dagRuns",
            json={"logical_date": None, "conf": conf},
            timeout=self.timeout,
        )
        if not response.ok:
            raise AssertionError(f"triggering {dag_id} answered {response.status_code}: {response.text}")
        return str(response.json()["dag_run_id"])

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._get(f"dags/{dag_id}/dagRuns/{run_id}")
        return result

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._get(f"dags/{dag_id}/dagRuns")["dag_runs"]
        return result

    def upstream_asset_events(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """The asset events that triggered a run."""
        result: list[dict[str, Any]] = self._get(f"dags/{dag_id}/dagRuns/{run_id}/upstreamAssetEvents")["asset_events"]
        return result

    def queued_asset_events(self, dag_id: str) -> list[dict[str, Any]]:
        """The asset events queued for a DAG that the scheduler has not turned into a run yet."""
        result: list[dict[str, Any]] = self._get(f"dags/{dag_id}/assets/queuedEvents")["queued_events"]
        return result

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._get(f"dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")
        return result

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._get(f"dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        return result

    def triggerer_jobs(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._get("jobs", job_type="TriggererJob", limit=100)["jobs"]
        return result
