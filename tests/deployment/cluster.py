"""A distributed Airflow on one machine: PostgreSQL, Redis, moto's S3, the sandbox and every Airflow component.

Each runs as a separate process with its own process group and log file under ``<root>/logs``. The
Airflow components share one ``AIRFLOW_HOME`` and are configured only through environment
variables (connections too), as a container deployment would configure them.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from capillary_provider.sandbox.testing import SandboxClient
from tests.deployment.processes import Component, Processes, free_port, wait_for
from tests.deployment.rest import AirflowApi
from tests.deployment.throttle import ThrottlingProxy

DAGS_FOLDER = Path(__file__).parent / "dags"
DAG_IDS = ("deployment_deferrable", "deployment_worker_crash", "deployment_campaign")
BUCKET = "deployment-handoff"
AWS_KEY, AWS_SECRET = "deployment-key-id", "deployment-secret"
THROTTLE_BYTES_PER_SECOND = 1_000_000

MISSING_HELP = (
    "The deployment test needs the Debian packages `postgresql` and `redis-server` "
    "(`make deploy-test` installs them when it runs as root): {missing}"
)


class ServiceMissing(RuntimeError):
    """A program the deployment needs is not installed."""


def postgres_bin() -> Path:
    """The newest PostgreSQL server bin directory (Debian keeps it off PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb and shutil.which("postgres"):
        return Path(initdb).parent
    raise ServiceMissing(MISSING_HELP.format(missing="no PostgreSQL server (initdb, postgres)"))


def redis_server() -> str:
    found = shutil.which("redis-server")
    if not found:
        raise ServiceMissing(MISSING_HELP.format(missing="no redis-server"))
    return found


def python_requirements() -> None:
    """The ``deploy`` extra (and moto's server from ``test``) are installed in this environment."""
    import importlib.util

    modules = ("psycopg2", "asyncpg", "redis", "airflow.providers.celery", "airflow.providers.amazon", "boto3")
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if not (Path(sys.executable).parent / "moto_server").exists():
        missing.append("moto_server (moto[server])")
    if missing:
        raise ServiceMissing(
            f"The deployment test needs the `deploy` and `test` extras (`make deploy-test` installs them): "
            f"missing {', '.join(missing)}"
        )


class Deployment:
    """Start with :meth:`start`; always :meth:`stop` (it ends every process it started)."""

    def __init__(self, root: Path, logs: Path) -> None:
        self.root = root
        self.logs = logs
        self.logs.mkdir(parents=True, exist_ok=True)
        self.home = root / "airflow-home"
        self.task_logs = logs / "tasks"
        self.home.mkdir()
        self.processes = Processes(self.logs)
        self.timings: dict[str, float] = {}
        """Seconds per phase, in order; they add up to the whole run."""
        self.observations: list[str] = []
        """What the crash phases saw (pids, bytes, how long a takeover took), for the report."""
        self.bin = Path(sys.executable).parent
        self.ports = {name: free_port() for name in ("postgres", "redis", "moto", "api")}
        self.api_url = f"http://127.0.0.1:{self.ports['api']}"
        self.api = AirflowApi(self.api_url)
        self.sandbox: SandboxClient | None = None
        self.proxy: ThrottlingProxy | None = None
        self.triggerers: list[Component] = []
        self.workers: list[Component] = []
        self.env: dict[str, str] = {}

    # -- lifecycle --------------------------------------------------------------------------------

    def phase(self, name: str, started: float) -> None:
        self.timings[name] = time.monotonic() - started

    def start(self) -> None:
        started = time.monotonic()
        python_requirements()
        pg_bin, redis = postgres_bin(), redis_server()
        self._start_postgres(pg_bin)
        self._start_redis(redis)
        self._start_moto()
        self._start_sandbox()
        self._wait_for_services()
        self.phase("PostgreSQL, Redis, moto, sandbox up", started)

        started = time.monotonic()
        self.env = self._airflow_env()
        self._migrate()
        self.phase("airflow db migrate", started)

        started = time.monotonic()
        self._start_airflow()
        self._wait_for_airflow()
        self.phase("Airflow components up and DAGs parsed", started)

    def stop(self) -> list[int]:
        started = time.monotonic()
        if self.proxy is not None:
            self.proxy.stop()
        if self.sandbox is not None:
            self.sandbox.close()
        leftovers = self.processes.stop_all()
        self.phase("stop everything", started)
        return leftovers

    # -- services ---------------------------------------------------------------------------------

    def _start_postgres(self, pg_bin: Path) -> None:
        """A private cluster, trust auth on 127.0.0.1 only; as the ``postgres`` user when we are root."""
        data = self.root / "pgdata"
        data.mkdir()
        user = None
        if os.geteuid() == 0:
            user = "postgres" if _user_exists("postgres") else "nobody"
            entry = pwd.getpwnam(user)
            os.chown(data, entry.pw_uid, entry.pw_gid)
            self.root.chmod(0o755)  # let that user reach its data directory
        initdb_log = self.logs / "initdb.log"
        with initdb_log.open("wb") as out:
            result = subprocess.run(
                [str(pg_bin / "initdb"), "-D", str(data), "-U", "airflow", "--auth=trust", "-E", "UTF8",
                 "--no-locale", "--no-sync"],
                stdout=out, stderr=subprocess.STDOUT, user=user, timeout=120, check=False,
            )  # fmt: skip
        if result.returncode != 0:
            raise AssertionError(f"initdb failed:\n{initdb_log.read_text(errors='replace')[-3000:]}")
        self.processes.start(
            "postgres",
            [str(pg_bin / "postgres"), "-D", str(data), "-p", str(self.ports["postgres"]), "-k", str(data),
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
             "-c", "full_page_writes=off", "-c", "max_connections=300"],
            env=_clean_env(), user=user, stop_signal=signal.SIGINT, stop_last=True,  # SIGINT: fast shutdown
        )  # fmt: skip

    def _start_redis(self, redis: str) -> None:
        self.processes.start(
            "redis",
            [redis, "--port", str(self.ports["redis"]), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.root)],
            env=_clean_env(), stop_last=True,
        )  # fmt: skip

    def _start_moto(self) -> None:
        self.processes.start(
            "moto-s3", [str(self.bin / "moto_server"), "-H", "127.0.0.1", "-p", str(self.ports["moto"])], _clean_env()
        )

    def _start_sandbox(self) -> None:
        self.sandbox_url_file = self.root / "sandbox-url"
        self.processes.start(
            "sandbox",
            [sys.executable, "-m", "capillary_provider.sandbox", "--host", "127.0.0.1", "--port", "0",
             "--port-file", str(self.sandbox_url_file), "--data-dir", str(self.root / "sandbox-data"),
             "--step-seconds", "1", "--log-level", "warning"],
            _clean_env(),
        )  # fmt: skip

    def _wait_for_services(self) -> None:
        import psycopg2

        def postgres_ready() -> bool:
            self.processes.check_running()
            connection = psycopg2.connect(
                host="127.0.0.1", port=self.ports["postgres"], user="airflow", dbname="postgres", connect_timeout=3
            )
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute("CREATE DATABASE airflow")
            connection.close()
            return True

        wait_for("PostgreSQL", postgres_ready, 60)

        def redis_ready() -> bool:
            self.processes.check_running()
            import redis

            return bool(redis.Redis(host="127.0.0.1", port=self.ports["redis"], socket_timeout=3).ping())

        wait_for("Redis", redis_ready, 30)

        def moto_ready() -> bool:
            self.processes.check_running()
            self.s3().create_bucket(Bucket=BUCKET)
            return True

        wait_for("moto's S3 server", moto_ready, 60)

        def sandbox_ready() -> str | None:
            self.processes.check_running()
            if not self.sandbox_url_file.exists():
                return None
            url = self.sandbox_url_file.read_text().strip()
            return url if requests.get(f"{url}/_sandbox/health", timeout=3).ok else None

        url = wait_for("the Capillary sandbox", sandbox_ready, 60)
        self.sandbox = SandboxClient(url)
        self.proxy = ThrottlingProxy(int(url.rsplit(":", 1)[1]), rate=THROTTLE_BYTES_PER_SECOND).start()

    def s3(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.moto_url,
            aws_access_key_id=AWS_KEY,
            aws_secret_access_key=AWS_SECRET,
            region_name="us-east-1",
        )

    @property
    def moto_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['moto']}"

    # -- Airflow ----------------------------------------------------------------------------------

    def _airflow_env(self) -> dict[str, str]:
        assert self.sandbox is not None
        assert self.proxy is not None
        database = f"airflow@127.0.0.1:{self.ports['postgres']}/airflow"
        from cryptography.fernet import Fernet

        def capillary(url: str) -> str:
            return json.dumps(
                {
                    "conn_type": "capillary",
                    "host": url,
                    "login": self.sandbox.key,  # type: ignore[union-attr]
                    "password": self.sandbox.secret,  # type: ignore[union-attr]
                    "extra": {"coupon_host": url},
                }
            )

        settings = {
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{database}",
            "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{self.ports['redis']}/0",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://{database}",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.ports["api"]),
            "AIRFLOW__API__BASE_URL": self.api_url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            # A crashed worker's task is failed (and retried) 20 s after its last heartbeat, not 300 s.
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            # A triggerer silent for 15 s (not 30) is dead: another one takes over its triggers.
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "15",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.task_logs),  # kept after the run, with the others
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW_CONN_CAPILLARY_DEFAULT": capillary(self.sandbox.url),
            "AIRFLOW_CONN_CAPILLARY_THROTTLED": capillary(self.proxy.url),
            "AIRFLOW_CONN_AWS_HANDOFF": json.dumps(
                {
                    "conn_type": "aws",
                    "login": AWS_KEY,
                    "password": AWS_SECRET,
                    "extra": {"endpoint_url": self.moto_url, "region_name": "us-east-1"},
                }
            ),
            # The coupon host of capillary_default: the campaign DAG is scheduled on that host's series Asset.
            "CAPILLARY_COUPON_HOST": self.sandbox.url.split("://", 1)[1],
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            "PYTHONUNBUFFERED": "1",
        }
        return {**_clean_env(), **settings}

    def airflow(self, *args: str) -> list[str]:
        return [str(self.bin / "airflow"), *args]

    def _migrate(self) -> None:
        log = self.logs / "db-migrate.log"
        with log.open("wb") as out:
            try:
                result = subprocess.run(
                    self.airflow("db", "migrate"), stdout=out, stderr=subprocess.STDOUT, env=self.env, timeout=300
                )
            except subprocess.TimeoutExpired:
                raise AssertionError(f"airflow db migrate took over 300 s:\n{log.read_text()[-3000:]}") from None
        if result.returncode != 0:
            raise AssertionError(f"airflow db migrate failed:\n{log.read_text(errors='replace')[-3000:]}")

    def _start_airflow(self) -> None:
        start = self.processes.start
        start("api-server", self.airflow("api-server", "--host", "127.0.0.1", "--port", str(self.ports["api"])),
              self.env)  # fmt: skip
        start("scheduler", self.airflow("scheduler", "--skip-serve-logs"), self.env)
        start("dag-processor", self.airflow("dag-processor"), self.env)
        self.start_triggerer()
        for number in (1, 2):
            command = self.airflow(
                "celery", "worker", "--concurrency", "2", "--celery-hostname", f"worker{number}@%h",
                "--pid", str(self.home / f"worker-{number}.pid"), "--skip-serve-logs",
                "--without-mingle", "--without-gossip",
            )  # fmt: skip
            self.workers.append(start(f"celery-worker-{number}", command, self.env))

    def start_triggerer(self) -> Component:
        number = len(self.triggerers) + 1
        component = self.processes.start(
            f"triggerer-{number}",
            self.airflow("triggerer", "--skip-serve-logs", "--pid", str(self.home / f"triggerer-{number}.pid")),
            self.env,
        )
        self.triggerers.append(component)
        return component

    def _wait_for_airflow(self) -> None:
        def api_up() -> bool:
            self.processes.check_running()
            self.api.login()
            return True

        wait_for("the API server to answer POST /auth/token", api_up, 240, 1)

        def healthy() -> dict[str, Any] | None:
            self.processes.check_running()
            health = self.api.health()
            parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
            return health if all(health.get(p, {}).get("status") == "healthy" for p in parts) else None

        wait_for("scheduler, triggerer and dag-processor to report healthy", healthy, 180, 1)

        def parsed() -> bool:
            self.processes.check_running()
            return all(self.api.dag(dag_id)["is_paused"] is False for dag_id in DAG_IDS)

        wait_for(f"the DAGs {DAG_IDS} to be parsed and unpaused", parsed, 180, 1)

        def workers_ready() -> bool:
            self.processes.check_running()
            return all(" ready." in worker.log_text() for worker in self.workers)

        wait_for("both Celery workers to be ready", workers_ready, 180, 1)

    # -- on failure -------------------------------------------------------------------------------

    def tails(self, lines: int = 40, task_logs: int = 3) -> str:
        """The end of every component's log, and of the task logs written last."""
        parts = [self.processes.tails(lines)]
        newest = sorted(self.task_logs.rglob("*.log"), key=lambda p: p.stat().st_mtime)[-task_logs:]
        for path in newest:
            text = path.read_text(encoding="utf-8", errors="replace").splitlines()
            parts += [f"----- task log {path.relative_to(self.task_logs)} -----", "\n".join(text[-lines:])]
        return "\n".join(parts)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _clean_env() -> dict[str, str]:
    """The environment without any Airflow setting of the developer's shell."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "AIRFLOW__"))}
