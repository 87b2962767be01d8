"""The reference docs in docs/ tell the truth: parameters, defaults, XCom keys, errors, examples, links."""

from __future__ import annotations

import ast
import inspect
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from capillary_provider import exceptions
from capillary_provider._compat import AirflowFailException
from capillary_provider.hooks.capillary import CapillaryHook
from capillary_provider.jobs import UploadJob
from capillary_provider.operators import coupon_upload as operator_module
from capillary_provider.operators.coupon_upload import CouponUploadOperator
from capillary_provider.operators.redeemed_coupon_upload import RedeemedCouponUploadOperator
from capillary_provider.sensors.coupon_upload import CouponUploadSensor
from capillary_provider.triggers.coupon_upload import CouponUploadTrigger
from capillary_provider.verdict import summarize
from capillary_provider.waiting import EVENT_STATUSES

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CLASSES_BY_HEADING = {
    "CouponUploadOperator": CouponUploadOperator,
    "RedeemedCouponUploadOperator": RedeemedCouponUploadOperator,
    "CouponUploadSensor": CouponUploadSensor,
    "CouponUploadTrigger": CouponUploadTrigger,
    "CapillaryHook": CapillaryHook,
}


def _read(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def _section(text: str, heading: str) -> str:
    """The text under ``## heading`` up to the next ``## `` heading."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    assert match, f"no section '## {heading}'"
    return match.group(1)


def _first_table(section: str) -> dict[str, list[str]]:
    """The first Markdown table of a section whose first column is a `code` name: name -> other cells."""
    rows: dict[str, list[str]] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"`([A-Za-z_*]+)`", cells[0]) if line.startswith("|") else None
        if match:
            rows[match.group(1)] = cells[1:]
        elif rows and not line.startswith("|"):
            break
    return rows


def _documented_default(value: Any) -> str:
    """How the docs spell a default from the code."""
    if value is inspect.Parameter.empty:
        return "required"
    if isinstance(value, timedelta):
        hours, rest = divmod(int(value.total_seconds()), 3600)
        assert rest == 0, "teach _documented_default this timedelta"
        return f"`timedelta(hours={hours})`"
    if isinstance(value, str):
        return f'`"{value}"`'
    return f"`{value!r}`"


def _own_parameters(cls: type) -> dict[str, inspect.Parameter]:
    """The constructor parameters of ``cls`` and of its bases in this package (not Airflow's)."""
    params: dict[str, inspect.Parameter] = {}
    for klass in reversed(cls.__mro__):
        if klass.__module__.startswith("capillary_provider") and "__init__" in vars(klass):
            for name, p in inspect.signature(klass.__init__).parameters.items():  # type: ignore[misc]
                if name != "self" and p.kind is not p.VAR_KEYWORD:
                    params[name] = p
    return params


@pytest.mark.parametrize("heading", list(CLASSES_BY_HEADING))
def test_every_parameter_is_documented_with_its_default(heading: str) -> None:
    rows = _first_table(_section(_read("operators.md"), heading))
    for name, param in _own_parameters(CLASSES_BY_HEADING[heading]).items():
        assert name in rows, f"{heading}.{name} is not documented"
        documented = rows[name][0]
        if name == "deferrable":
            assert "[operators] default_deferrable" in documented
        else:
            assert documented == _documented_default(param.default), f"{heading}.{name}"


@pytest.mark.parametrize("heading", list(CLASSES_BY_HEADING))
def test_no_documented_parameter_is_missing_from_the_code(heading: str) -> None:
    rows = _first_table(_section(_read("operators.md"), heading))
    cls = CLASSES_BY_HEADING[heading]
    inherited = {"poke_interval", "timeout", "mode"} if cls is CouponUploadSensor else set()
    documented = set(rows) - {"**kwargs"} - inherited
    assert documented <= set(_own_parameters(cls))


def test_templated_column_matches_template_fields() -> None:
    for heading in ("CouponUploadOperator", "RedeemedCouponUploadOperator", "CouponUploadSensor"):
        rows = _first_table(_section(_read("operators.md"), heading))
        cls = CLASSES_BY_HEADING[heading]
        templated = {name for name, cells in rows.items() if cells[1] == "yes"}
        assert templated == set(cls.template_fields), heading


def test_trigger_event_statuses_are_documented() -> None:
    section = _section(_read("operators.md"), "CouponUploadTrigger")
    events = _first_table(section.split("Events:")[1])
    assert events.pop("status") == ["When", "The task then"]  # the header row
    assert set(events) == set(EVENT_STATUSES)


def test_xcom_keys_are_documented() -> None:
    rows = _first_table(_read("xcom-and-summary.md"))
    keys = {
        operator_module.XCOM_JOB_ID,
        operator_module.XCOM_JOB_IDS,
        operator_module.XCOM_STATUS,
        operator_module.XCOM_SUMMARY,
        "return_value",
    }
    assert set(rows) == keys


def test_summary_example_has_the_shape_summarize_returns() -> None:
    text = _read("xcom-and-summary.md")
    example = json.loads(re.search(r"## The summary.*?```json\n(.*?)```", text, flags=re.S).group(1))  # type: ignore[union-attr]
    real = summarize("1001", [UploadJob(job_id=7, status="FINISHED")])
    assert example.keys() == real.keys()
    for job in example["jobs"]:
        assert job.keys() == real["jobs"][0].keys()
        assert UploadJob.from_dict(job).to_dict() == job
    assert example["job_ids"] == [job["job_id"] for job in example["jobs"]]
    assert example["total_rows"] == sum(job["actual_row_count"] for job in example["jobs"])
    assert example["rejected_rows"] == sum(job["error_count"] for job in example["jobs"])


def test_summary_example_file_names_are_what_the_operator_produces() -> None:
    text = _read("xcom-and-summary.md") + _read("failure-policy-and-retries.md")
    expected = operator_module.batch_file_name("promo", "upload_coupons", "scheduled__2026-11-27T00:00:00+00:00", -1, 1)
    assert expected in text


def test_error_table_matches_which_errors_skip_retries() -> None:
    rows = _first_table(_section(_read("failure-policy-and-retries.md"), "What fails at once and what Airflow retries"))
    classes = {
        name: cls
        for name, cls in vars(exceptions).items()
        if isinstance(cls, type) and issubclass(cls, exceptions.CapillaryError) and cls is not exceptions.CapillaryError
    }
    assert set(rows) == set(classes)
    for name, cls in classes.items():
        retried = rows[name][-1].startswith("yes")
        assert retried is not issubclass(cls, AirflowFailException), name


def _code_messages() -> list[str]:
    """Every string literal of the package as a message template: each placeholder (``{...}``, ``%s``) a NUL."""
    texts = []
    for path in (ROOT / "capillary_provider").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.JoinedStr):
                texts.append("".join(v.value if isinstance(v, ast.Constant) else "\0" for v in node.values))
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                texts.append(re.sub(r"%[sdr]|%\.\d+f", "\0", node.value))
    return texts


def _fits(fragments: list[str], template: str) -> bool:
    at = 0
    for fragment in fragments:
        at = template.find(fragment, at)
        if at < 0:
            return False
        at += len(fragment)
    return True


@pytest.mark.parametrize("quote", re.findall(r'^## "(.*)"$', _read("troubleshooting.md"), flags=re.M))
def test_troubleshooting_quotes_each_message_word_for_word(quote: str) -> None:
    """A quoted heading is a message of the code, ``...`` standing for what varies; Capillary's own error code
    (digits only) is quoted from its answer, not from our code."""
    fragments = [f.strip() for f in re.split(r"\(\.\.\.\)|\.\.\.", quote) if f.strip() and not f.strip().isdigit()]
    assert any(_fits(fragments, template) for template in _code_messages()), quote


def _connection_examples() -> list[str]:
    return re.findall(r"AIRFLOW_CONN_CAPILLARY_DEFAULT='(.*?)'", _read("connection.md"), flags=re.S)


def test_connection_doc_has_an_example_for_each_capillary_cluster() -> None:
    clusters = ["EU", "US", "India", "APAC2", "SEA", "US HC", "China"]
    text = _read("connection.md")
    for cluster in clusters:
        assert re.search(rf"^{re.escape(cluster)}:\n\n```bash\nexport AIRFLOW_CONN_CAPILLARY_DEFAULT=", text, re.M)


@pytest.mark.parametrize("example", _connection_examples())
def test_connection_examples_build_a_hook_with_the_documented_hosts(
    example: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_CAPILLARY_DEFAULT", example)
    hook = CapillaryHook()
    assert hook.connection.conn_type == "capillary"
    assert hook.connection.login
    assert hook.connection.password
    host = hook.connection.host
    coupon_host = hook.connection.extra_dejson["coupon_host"]
    assert hook.api_url == (host if "://" in host else f"https://{host}")
    assert hook.coupon_url == (coupon_host if "://" in coupon_host else f"https://{coupon_host}")


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@pytest.mark.parametrize("page", sorted(p.name for p in DOCS.glob("*.md")))
def test_relative_links_and_anchors_resolve(page: str) -> None:
    text = _read(page)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        file = (DOCS / path).resolve() if path else DOCS / page
        assert file.is_file(), f"{page}: broken link {target}"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", file.read_text(encoding="utf-8"), flags=re.M)
            assert anchor in {_slug(h) for h in headings}, f"{page}: no anchor #{anchor} in {file.name}"


def test_index_links_every_page() -> None:
    index = _read("index.md")
    for page in DOCS.glob("*.md"):
        if page.name != "index.md":
            assert f"]({page.name})" in index, f"index.md does not link {page.name}"


def test_sandbox_doc_lists_every_command_line_option() -> None:
    from capillary_provider.sandbox.__main__ import _parse_args

    text = _read("sandbox.md")
    for dest, default in vars(_parse_args([])).items():
        option = "--" + dest.replace("_", "-")
        assert f"`{option}" in text, f"{option} is not documented"
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            row = next(line for line in text.splitlines() if line.startswith(f"| `{option}"))
            documented = re.search(r"\| `([0-9.]+)` \|", row)
            assert documented, f"{option}: no default in {row!r}"
            assert float(documented.group(1)) == float(default), option


def test_changelog_has_the_current_version() -> None:
    from capillary_provider import __version__

    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    # A release date once it is published; until then the section says so (nothing is on PyPI yet).
    released_or_not = r"(\d{4}-\d{2}-\d{2}|not yet published)"
    assert re.search(rf"^## \[{re.escape(__version__)}\] - {released_or_not}$", changelog, flags=re.M)
    # No link to a release page or repository that does not exist: nothing is published anywhere yet.
    assert "github.com/airflow-provider-capillary" not in changelog


def test_readme_supported_pairs_are_the_ci_matrix_each_pinned() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    pairs = re.findall(r"^\| (3\.\d+\.\d+) \| (3\.\d+) \|", readme, flags=re.M)
    ci = re.findall(r"^run_pair (\S+) (\S+) ", (ROOT / ".ci" / "run").read_text(encoding="utf-8"), flags=re.M)
    assert pairs, "README.md: no table of supported Airflow/Python pairs"
    assert pairs == ci
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    for airflow_version, python in pairs:
        constraints = ROOT / "constraints" / f"airflow-{airflow_version}-py{python}.txt"
        assert f"\napache-airflow=={airflow_version}\n" in constraints.read_text(encoding="utf-8"), constraints.name
        assert f'"Programming Language :: Python :: {python}"' in pyproject


PLATFORM_SECTIONS = (
    "The official Helm chart with the Kubernetes executor",
    "Astronomer (Astro)",
    "Amazon MWAA",
    "Google Cloud Composer 3",
)


@pytest.mark.parametrize("heading", PLATFORM_SECTIONS)
def test_each_platform_section_ends_with_the_pages_it_was_checked_against(heading: str) -> None:
    last_line = _section(_read("production.md"), heading).strip().splitlines()[-1]
    assert last_line.startswith("Checked against: "), f"{heading}: ends with {last_line!r}"
    urls = [url.strip() for url in last_line.removeprefix("Checked against: ").split(",")]
    assert urls
    for url in urls:
        assert re.fullmatch(r"https://[^\s,]+", url), f"{heading}: {url!r} is not an https URL"


@pytest.mark.parametrize("heading", PLATFORM_SECTIONS)
def test_each_platform_section_covers_install_triggerer_connection_egress_disk_metrics_upgrades(heading: str) -> None:
    section = _section(_read("production.md"), heading)
    for topic in ("Install", "Triggerer", "Connection", "Egress", "Disk", "Metrics", "Upgrades"):
        assert re.search(rf"^\*\*{topic}[ .]", section, flags=re.M), f"{heading}: no **{topic}** paragraph"
