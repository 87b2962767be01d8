"""The Capillary connection form in the real Airflow UI, driven by headless Chromium.

A real ``airflow api-server`` (temporary AIRFLOW_HOME, SQLite, SimpleAuthManager with everyone admin,
``[core] test_connection = Enabled``) serves the UI on 127.0.0.1; Debian's ``chromium`` is driven by
Playwright. Screenshots land in ``test-artifacts/``.

The module collects its tests only on Airflow 3.3 (``__test__`` below): on other versions it holds no
test at all rather than skipped ones. Run it with ``pytest -m browser`` in the Airflow 3.3 environment.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import airflow
import pytest
import requests
from packaging.version import Version

from capillary_provider.sandbox.testing import SandboxClient

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Locator, Page

__test__ = Version(airflow.__version__).release[:2] == (3, 3)
pytestmark = [pytest.mark.browser, pytest.mark.integration]

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
UI_TIMEOUT_MS = 90_000
"""Generous: the machine is shared, and the API server builds the hook metadata on first use."""
SERVER_START_SECONDS = 300.0


@dataclass
class AirflowUI:
    """A running API server: its base URL and the environment its CLI needs to reach the same database."""

    url: str
    env: dict[str, str]

    def stored_connection(self, conn_id: str) -> dict[str, Any]:
        """The connection as Airflow stored it (secrets decrypted), read with ``airflow connections get``."""
        result = subprocess.run(
            [_airflow(), "connections", "get", conn_id, "--output", "json"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-4000:]
        stdout = result.stdout
        (conn,) = json.loads(stdout[stdout.index("[") :])
        return dict(conn)


def _airflow() -> str:
    return str(Path(sys.executable).with_name("airflow"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def airflow_ui(fresh_airflow_home: Callable[[str], Path]) -> Iterator[AirflowUI]:
    """``airflow api-server`` on a free 127.0.0.1 port, in a fresh AIRFLOW_HOME with a migrated SQLite DB."""
    home = fresh_airflow_home("airflow-ui-home")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__API__BASE_URL": url,
        }
    )
    ARTIFACTS.mkdir(exist_ok=True)
    log_path = ARTIFACTS / "airflow-api-server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [_airflow(), "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopping it also stops its worker
        )
        try:
            _wait_for_health(server, url, log_path)
            yield AirflowUI(url=url, env=env)
        finally:
            _stop_group(server)


def _wait_for_health(server: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"airflow api-server exited with {server.returncode}; see {log_path}")
        try:
            if requests.get(f"{url}/api/v2/monitor/health", timeout=5).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"airflow api-server did not answer within {SERVER_START_SECONDS:.0f} s; see {log_path}")


def _stop_group(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is not None:
        return
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    """Debian's Chromium, headless, with a fresh profile (Playwright cannot download browsers here)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            # Debian's chromium where it is installed, else the browser `playwright install chromium` fetched.
            executable_path=CHROMIUM if os.path.exists(CHROMIUM) else None,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1400, "height": 1100},
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser: BrowserContext) -> Iterator[Page]:
    from playwright.sync_api import expect

    expect.set_options(timeout=UI_TIMEOUT_MS)
    page = browser.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    try:
        yield page
    finally:
        page.close()


def _screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _open_capillary_form(page: Page, ui: AirflowUI) -> Locator:
    """Open Admin > Connections > Add Connection, pick the Capillary type; return the dialog."""
    from playwright.sync_api import expect

    page.goto(f"{ui.url}/connections")
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("combobox").fill("Capillary")
    page.get_by_role("option", name="Capillary", exact=True).click()
    expect(dialog.get_by_label("API host", exact=True)).to_be_visible()
    return dialog


def _show_extra_fields(dialog: Locator) -> None:
    dialog.get_by_role("button", name="Extra Fields", exact=True).click()


def _coupon_host_input(dialog: Locator) -> Locator:
    """The input of the field group labelled "Coupon host" (Airflow's label is not tied to it by ``for``)."""
    label = dialog.page.locator("label").filter(has_text=re.compile(r"^\s*Coupon host\s*$"))
    return dialog.get_by_role("group").filter(has=label).locator("input")


def _add_connection_through_form(
    page: Page, ui: AirflowUI, conn_id: str, *, host: str, login: str, password: str, coupon_host: str
) -> None:
    from playwright.sync_api import expect

    dialog = _open_capillary_form(page, ui)
    dialog.get_by_label("Connection ID").fill(conn_id)
    dialog.get_by_label("API host", exact=True).fill(host)
    dialog.get_by_label("Client key", exact=True).fill(login)
    dialog.get_by_label("Client secret", exact=True).fill(password)
    _show_extra_fields(dialog)
    _coupon_host_input(dialog).fill(coupon_host)
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    expect(_connection_row(page, conn_id)).to_be_visible()


def _connection_row(page: Page, conn_id: str) -> Locator:
    return page.get_by_role("row").filter(has=page.get_by_text(conn_id, exact=True))


def _set_port_for_the_test_button(ui: AirflowUI, conn_id: str, port: int) -> None:
    """Work around an Airflow 3.3.2 bug so the Test button reaches the hook.

    The 3.3.2 UI sends ``port: Number(null)`` = 0 for a connection without a port, and the API then
    refuses the test with 400 "The host or port to test differs from the stored connection" for every
    connection type (fixed upstream by apache/airflow#73298). The Capillary hook ignores the port, so
    storing the sandbox's own port changes nothing else.
    """
    response = requests.patch(
        f"{ui.url}/api/v2/connections/{conn_id}",
        params={"update_mask": "port"},
        json={"connection_id": conn_id, "conn_type": "capillary", "port": port},
        timeout=60,
    )
    response.raise_for_status()


def _click_test(page: Page, ui: AirflowUI, conn_id: str) -> None:
    page.goto(f"{ui.url}/connections")
    _connection_row(page, conn_id).get_by_role("button", name="Test Connection").click()


def _toast(page: Page, text: str) -> Locator:
    return page.locator('[data-scope="toast"][data-part="root"]').filter(has_text=text)


def test_add_connection_form_shows_capillary_labels_and_placeholders(page: Page, airflow_ui: AirflowUI) -> None:
    from playwright.sync_api import expect

    dialog = _open_capillary_form(page, airflow_ui)
    expected = {
        "API host": ("host", "eu.api.capillarytech.com"),
        "Client key": ("login", "OAuth client key of the API client"),
        "Client secret": ("password", "OAuth client secret of the API client"),
    }
    for label, (name, placeholder) in expected.items():
        field = dialog.get_by_label(label, exact=True)
        expect(field).to_be_visible()
        expect(field).to_have_attribute("name", name)
        expect(field).to_have_attribute("placeholder", placeholder)
    expect(dialog.get_by_label("Client secret", exact=True)).to_have_attribute("type", "password")
    _screenshot(page, "connection-form-capillary")


def test_add_connection_form_hides_port_and_schema(page: Page, airflow_ui: AirflowUI) -> None:
    from playwright.sync_api import expect

    dialog = _open_capillary_form(page, airflow_ui)
    expect(dialog.locator('input[name="host"]')).to_have_count(1)
    expect(dialog.locator('input[name="port"]')).to_have_count(0)
    expect(dialog.locator('input[name="schema"]')).to_have_count(0)


def test_add_connection_form_shows_the_coupon_host_field(page: Page, airflow_ui: AirflowUI) -> None:
    from playwright.sync_api import expect

    dialog = _open_capillary_form(page, airflow_ui)
    _show_extra_fields(dialog)
    coupon_host = _coupon_host_input(dialog)
    expect(coupon_host).to_be_visible()
    expect(coupon_host).to_have_count(1)
    expect(coupon_host).to_have_attribute("name", re.compile(r"coupon_host$"))
    expect(dialog.get_by_text("Host of the /coupon/api/v1 endpoints")).to_be_visible()
    expect(dialog.get_by_text("Leave empty to use the API host.", exact=False)).to_be_visible()
    _screenshot(page, "connection-form-capillary-extra-fields")


def test_connection_saved_through_the_form_stores_every_field(
    page: Page, airflow_ui: AirflowUI, sandbox: SandboxClient
) -> None:
    _add_connection_through_form(
        page,
        airflow_ui,
        "capillary_from_form",
        host=sandbox.url,
        login=sandbox.key,
        password=sandbox.secret,
        coupon_host=sandbox.url,
    )
    _screenshot(page, "connection-list-after-save")
    stored = airflow_ui.stored_connection("capillary_from_form")
    assert stored["conn_type"] == "capillary"
    assert stored["host"] == sandbox.url
    assert stored["login"] == sandbox.key
    assert stored["password"] == sandbox.secret
    assert stored["port"] is None
    # The form's other extra fields (verify, proxies, timeout, budget) were left empty.
    assert {key: value for key, value in stored["extra_dejson"].items() if value not in (None, "")} == {
        "coupon_host": sandbox.url
    }


def test_test_button_reports_success_for_good_credentials(
    page: Page, airflow_ui: AirflowUI, sandbox: SandboxClient
) -> None:
    from playwright.sync_api import expect

    conn_id = "capillary_test_ok"
    _add_connection_through_form(
        page, airflow_ui, conn_id, host=sandbox.url, login=sandbox.key, password=sandbox.secret, coupon_host=sandbox.url
    )
    _set_port_for_the_test_button(airflow_ui, conn_id, int(sandbox.url.rsplit(":", 1)[1]))
    _click_test(page, airflow_ui, conn_id)
    toast = _toast(page, "Test Connection Successful")
    expect(toast).to_be_visible()
    expect(toast).to_contain_text("Capillary accepted the client key")
    _screenshot(page, "connection-test-success")
    assert [(call["method"], call["path"], call["status"]) for call in sandbox.requests()] == [
        ("POST", "/v3/oauth/token/generate", 200)
    ]


def test_test_button_explains_refused_credentials(page: Page, airflow_ui: AirflowUI, sandbox: SandboxClient) -> None:
    from playwright.sync_api import expect

    conn_id = "capillary_test_bad_secret"
    wrong_secret = "not-the-sandbox-secret"
    _add_connection_through_form(
        page, airflow_ui, conn_id, host=sandbox.url, login=sandbox.key, password=wrong_secret, coupon_host=sandbox.url
    )
    _set_port_for_the_test_button(airflow_ui, conn_id, int(sandbox.url.rsplit(":", 1)[1]))
    _click_test(page, airflow_ui, conn_id)
    toast = _toast(page, "refused the client key and secret")
    expect(toast).to_be_visible()
    text = toast.inner_text()
    assert "Test Connection Failed" in text
    assert "320001 Invalid client key and secret" in text
    assert "Check the connection's login and password" in text
    assert wrong_secret not in text
    _screenshot(page, "connection-test-refused")
