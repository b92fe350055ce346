"""The reader library installs on its own (scim_reader/pyproject.toml) and reads the directory."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.azurite import TableHarness
from tests.conftest import make_api
from tests.support import GROUP_SCHEMA, USER_SCHEMA, FunctionClient, use_api

pytestmark = pytest.mark.timeout(300)

SOURCE = Path(__file__).resolve().parents[1] / "scim_reader"
READ = """
import importlib.metadata, importlib.util, json, sys
import scim_reader
from scim_reader import DirectoryReader
reader = DirectoryReader.from_connection_string(sys.argv[1], table=sys.argv[2])
directory = reader.tenant()
user = directory.get_user_by_name("ADA@example.com")
groups = [group.display_name for group in directory.list_groups()]
events = [event.type for event in directory.events().events]
print(json.dumps({
    "file": scim_reader.__file__,
    "requires": importlib.metadata.requires("scim-reader"),
    "scim_core": importlib.util.find_spec("scim_core") is not None,
    "user": user.user_name if user else None,
    "groups": groups,
    "events": events,
}))
"""


def run(*command: str | Path, cwd: Path) -> str:
    proc = subprocess.run([str(part) for part in command], cwd=cwd, capture_output=True,
                          text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_the_reader_wheel_installs_alone_into_a_fresh_venv_and_reads_azurite(
        tmp_path: Path, table_harness: TableHarness) -> None:
    """scim_reader/pyproject.toml builds a wheel holding the scim_reader package only; pip
    installs it into a fresh virtual environment, whose python (outside the repository,
    without scim_core) reads a user, a group and the change feed the endpoint wrote."""
    use_api(make_api(table_harness.store))
    try:
        api = FunctionClient()
        assert api.post("/Users", {"schemas": [USER_SCHEMA], "userName": "ada@example.com"}
                        ).status == 201
        assert api.post("/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "Analysts"}
                        ).status == 201
    finally:
        use_api(None)

    source = tmp_path / "src" / "scim_reader"
    shutil.copytree(SOURCE, source, ignore=shutil.ignore_patterns(
        "__pycache__", "build", "*.egg-info"))
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
        "--no-index", "-w", tmp_path / "dist", source, cwd=tmp_path)
    wheel, = (tmp_path / "dist").glob("scim_reader-*.whl")
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
        wheel, cwd=tmp_path)
    # The dependencies (azure-data-tables and its own) come from the test's environment,
    # after the venv's own site-packages, so the reader itself is the installed wheel's.
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                    cwd=tmp_path).strip())
    (site / "shared_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    found = json.loads(run(python, "-c", READ, table_harness.azurite.connection_string,
                           table_harness.client.table_name, cwd=tmp_path))
    assert Path(found["file"]).is_relative_to(venv)
    assert found["requires"] == ["azure-data-tables<13,>=12.7"]
    assert found["scim_core"] is False
    assert found["user"] == "ada@example.com"
    assert found["groups"] == ["Analysts"]
    assert found["events"] == ["user.created", "group.created"]
