"""`make run`'s helper: the settings file and the generated token."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from scripts import local_run

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def settings_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copyfile(ROOT / "local.settings.example.json", tmp_path / "example.json")
    monkeypatch.setattr(local_run, "SETTINGS", tmp_path / "local.settings.json")
    monkeypatch.setattr(local_run, "EXAMPLE", tmp_path / "example.json")
    monkeypatch.delenv("SCIM_BEARER_TOKEN", raising=False)
    return tmp_path


def test_first_run_creates_settings_with_a_strong_token(settings_dir: Path) -> None:
    """The first run copies the example settings and stores a generated 256-bit token."""
    values = local_run.ensure_settings()
    token = values["SCIM_BEARER_TOKEN"]
    assert len(token) >= 43
    stored = json.loads((settings_dir / "local.settings.json").read_text())
    assert stored["Values"]["SCIM_BEARER_TOKEN"] == token


def test_later_runs_keep_the_same_token(settings_dir: Path) -> None:
    """The token pasted into Entra keeps working: a second run does not change it."""
    first = local_run.ensure_settings()["SCIM_BEARER_TOKEN"]
    assert local_run.ensure_settings()["SCIM_BEARER_TOKEN"] == first


def test_a_token_in_the_environment_is_not_overwritten(settings_dir: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """With SCIM_BEARER_TOKEN in the environment no token is generated into the file."""
    monkeypatch.setenv("SCIM_BEARER_TOKEN", "chosen-token")
    values = local_run.ensure_settings()
    assert values["SCIM_BEARER_TOKEN"] == ""
