"""What we ship: metadata PyPI accepts (``twine check --strict``) that links to no unpublished page, the license
in the wheel and the sdist, an sdist whose tests run, a wheel whose sandbox works.

The sdist and the wheel are built once per module with ``uv build`` (the wheel from the sdist, as an
installer building from source would). The wheel is then installed into a fresh virtualenv, with
the versions of this environment, and the sandbox's documented ``dag_test`` command runs there from
a folder holding no DAGs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

import capillary_provider

pytestmark = pytest.mark.slow  # builds, installs and starts Airflow in new processes: minutes, not the inner loop

ROOT = Path(__file__).resolve().parent.parent
SDIST_TREES = ("tests", "docs", "example_dags", "benchmarks", "constraints", ".ci")
"""Folders the sdist carries whole, so that its test suite (and `make test`) runs after unpacking it."""
SDIST_FILES = ("LICENSE", "NOTICE", "README.md", "CHANGELOG.md", "Makefile", "pyproject.toml", "MANIFEST.in")


def _uv() -> str:
    candidate = Path(sys.executable).with_name("uv")
    found = str(candidate) if candidate.exists() else shutil.which("uv")
    assert found, "uv is needed (it is in the test extra)"
    return found


@dataclass
class Built:
    sdist: Path
    wheel: Path

    def sdist_names(self) -> set[str]:
        """Paths in the sdist, relative to its top folder."""
        with tarfile.open(self.sdist) as tar:
            return {name.partition("/")[2] for name in tar.getnames()}

    def wheel_names(self) -> set[str]:
        with zipfile.ZipFile(self.wheel) as wheel:
            return set(wheel.namelist())

    def wheel_text(self, name: str) -> str:
        with zipfile.ZipFile(self.wheel) as wheel:
            return wheel.read(name).decode()


LEFTOVERS = shutil.ignore_patterns(
    ".git", ".venv*", "*.egg-info", "build", "dist", "__pycache__", "*.pyc", ".*_cache", "test-artifacts"
)
"""Not sources: setuptools would even take the file list of a stale ``*.egg-info`` into the sdist."""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The sdist and wheel built from a clean copy of the sources (symbolic links kept as links)."""
    source = tmp_path_factory.mktemp("source") / "src"
    shutil.copytree(ROOT, source, symlinks=True, ignore=LEFTOVERS)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([_uv(), "build", "--quiet", "--out-dir", str(out), str(source)], check=True, timeout=600)
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return Built(sdist=sdist, wheel=wheel)


def _source_files(tree: str) -> set[str]:
    """Files of a source folder, as the sdist should hold them (no caches, no benchmark results)."""
    return {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / tree).rglob("*")
        if path.is_file()
        and "__pycache__" not in path.parts
        and path.suffix != ".pyc"
        and not path.relative_to(ROOT).as_posix().startswith("benchmarks/results/")
    }


KNOWN_PAGES: frozenset[str] = frozenset()
"""Published pages the package metadata may link to: none yet (no public repository, no docs site, no release)."""
URL_FIELDS = ("Home-page", "Download-URL", "Project-URL")


def _metadata_headers(text: str) -> list[tuple[str, str]]:
    """The header fields of a METADATA / PKG-INFO file (the part before the long description)."""
    headers = text.split("\n\n", 1)[0]
    return [(name, value.strip()) for name, _, value in (line.partition(":") for line in headers.splitlines())]


def test_twine_check_strict_passes_on_sdist_and_wheel(built: Built) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(built.sdist), str(built.wheel)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("PASSED") == 2, result.stdout


def test_metadata_links_only_to_published_pages(built: Built) -> None:
    (dist_info,) = {name.split("/")[0] for name in built.wheel_names() if name.split("/")[0].endswith(".dist-info")}
    with tarfile.open(built.sdist) as tar:
        pkg_info = tar.extractfile(f"{tar.getnames()[0].partition('/')[0]}/PKG-INFO")
        assert pkg_info is not None
        sdist_metadata = pkg_info.read().decode()
    for metadata in (built.wheel_text(f"{dist_info}/METADATA"), sdist_metadata):
        headers = _metadata_headers(metadata)
        assert ("Version", capillary_provider.__version__) in headers
        urls = {value.rpartition(", ")[2] for name, value in headers if name in URL_FIELDS}
        assert urls <= KNOWN_PAGES, f"the metadata links to unpublished pages: {sorted(urls - KNOWN_PAGES)}"


def test_sdist_has_license_and_notice(built: Built) -> None:
    names = built.sdist_names()
    assert {"LICENSE", "NOTICE"} <= names
    with tarfile.open(built.sdist) as tar:
        top = tar.getnames()[0].partition("/")[0]
        member = tar.extractfile(f"{top}/LICENSE")
        assert member is not None
        assert member.read().decode() == (ROOT / "LICENSE").read_text(encoding="utf-8")


def test_wheel_has_license_and_notice_in_its_metadata(built: Built) -> None:
    names = built.wheel_names()
    (dist_info,) = {name.split("/")[0] for name in names if name.split("/")[0].endswith(".dist-info")}
    assert {f"{dist_info}/licenses/LICENSE", f"{dist_info}/licenses/NOTICE"} <= names
    assert built.wheel_text(f"{dist_info}/licenses/LICENSE") == (ROOT / "LICENSE").read_text(encoding="utf-8")
    metadata = built.wheel_text(f"{dist_info}/METADATA")
    assert "License-Expression: Apache-2.0" in metadata
    assert {"License-File: LICENSE", "License-File: NOTICE"} <= set(metadata.splitlines())


def test_license_is_the_apache_2_text() -> None:
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.lstrip().startswith("Apache License\n                        Version 2.0, January 2004")
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert len(text.split()) > 1500  # the whole text, not a stub pointing at it


def test_sdist_carries_the_whole_test_suite_docs_examples_and_benchmarks(built: Built) -> None:
    names = built.sdist_names()
    assert set(SDIST_FILES) <= names
    assert {"tests/conftest.py", "tests/faultkit.py", "tests/sandbox/test_sandbox.py"} <= names
    for tree in SDIST_TREES:
        missing = _source_files(tree) - names
        assert not missing, f"the sdist lacks {sorted(missing)}"
    assert not {name for name in names if "__pycache__" in name or name.endswith(".pyc")}


def test_wheel_ships_the_example_dags(built: Built) -> None:
    for path in (ROOT / "example_dags").glob("*.py"):
        name = f"capillary_provider/example_dags/{path.name}"
        assert built.wheel_text(name) == path.read_text(encoding="utf-8"), name


def test_unpacked_sdist_collects_every_test_module(built: Built, tmp_path: Path) -> None:
    with tarfile.open(built.sdist) as tar:
        tar.extractall(tmp_path, filter="data")
    (unpacked,) = tmp_path.iterdir()
    result = subprocess.run(
        # Every marker, the deployment test (deselected by default) included.
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "-m",
            "deployment or not deployment",
        ],
        cwd=unpacked,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    collected_files = {line.split("::")[0] for line in result.stdout.splitlines() if "::" in line}
    expected = {path.relative_to(ROOT).as_posix() for path in (ROOT / "tests").rglob("test_*.py")}
    # A module that holds no test on this Airflow version (the browser test off 3.3) collects nothing.
    assert expected - collected_files <= {"tests/test_connection_form_browser.py"}
    assert re.search(r"^\d+ tests? collected", result.stdout, flags=re.M), result.stdout[-2000:]


def _clean_env() -> dict[str, str]:
    """This environment without Airflow settings, connections or an import path leading back to the checkout."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "PYTEST_")) and key not in {"PYTHONPATH", "AIRFLOW_HOME"}
    }


@pytest.fixture(scope="module")
def wheel_venv(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv holding the built wheel and, pinned to this environment's versions, its dependencies."""
    base = tmp_path_factory.mktemp("wheel-venv")
    venv = base / "venv"
    uv = _uv()
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, timeout=300)
    freeze = subprocess.run(
        [uv, "pip", "freeze", "--python", sys.executable, "--exclude-editable"],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    ).stdout
    pins = base / "pins.txt"
    pins.write_text(freeze, encoding="utf-8")
    subprocess.run(
        [uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), "-c", str(pins), str(built.wheel)],
        check=True,
        timeout=900,
    )
    return venv


def _documented_dag_test_command() -> str:
    """The first command of docs/sandbox.md's one-command section."""
    text = (ROOT / "docs" / "sandbox.md").read_text(encoding="utf-8")
    section = text.split("## Run a DAG against it in one command", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S)
    assert block, "docs/sandbox.md: no bash block under 'Run a DAG against it in one command'"
    command = block.group(1).strip().splitlines()[0]
    assert command.startswith("python -m capillary_provider.sandbox.dag_test "), command
    return command


def _venv_env(venv: Path) -> dict[str, str]:
    return _clean_env() | {"PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", "VIRTUAL_ENV": str(venv)}


@pytest.mark.e2e
def test_documented_dag_test_runs_from_a_wheel_install(wheel_venv: Path, tmp_path: Path) -> None:
    env = _venv_env(wheel_venv)
    where = subprocess.run(
        ["python", "-c", "import capillary_provider; print(capillary_provider.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(wheel_venv), where  # the wheel's copy, not the checkout
    command = _documented_dag_test_command()
    result = subprocess.run(
        ["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "jobs finished: True" in result.stdout, output[-6000:]


@pytest.mark.e2e
def test_dag_test_names_dags_folder_when_the_dag_is_not_there(wheel_venv: Path, tmp_path: Path) -> None:
    (tmp_path / "dags").mkdir()
    command = ["python", "-m", "capillary_provider.sandbox.dag_test", "my_dag", "--dags-folder", "dags"]
    result = subprocess.run(
        command, cwd=tmp_path, env=_venv_env(wheel_venv), capture_output=True, text=True, timeout=900, check=False
    )
    assert result.returncode == 1, result.stderr[-4000:]
    assert f"No DAG 'my_dag' in {tmp_path / 'dags'}" in result.stderr, result.stderr[-4000:]
    assert "pass --dags-folder" in result.stderr


def test_dag_test_names_dags_folder_when_the_folder_is_missing(wheel_venv: Path, tmp_path: Path) -> None:
    command = ["python", "-m", "capillary_provider.sandbox.dag_test", "my_dag", "--dags-folder", "nowhere"]
    result = subprocess.run(
        command, cwd=tmp_path, env=_venv_env(wheel_venv), capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 2
    assert "--dags-folder nowhere: no such folder" in result.stderr
