"""Static gate for the Bicep templates: parse, Azure's REST schema, Flex Consumption, checkov.

Run with the interpreter of the separate infra venv (checkov's pins clash with the app's):

    .venv-infra/bin/python infra/check.py [--root infra]

Four checks, each of which fails the gate:

* syntax: every file parses. The Bicep CLI is not available everywhere the tests run, so
  pycep (the parser checkov itself uses) is the syntax gate;
* schema (schemacheck.py): every resource type, API version and property path exists in
  Azure's REST API definitions for that version, as the pinned azure-mgmt-* SDKs carry them;
* Flex Consumption (flexcheck.py): no site property or app setting that Microsoft lists as
  deprecated on the Flex Consumption plan;
* checkov: no failed security check. checkov exits 0 on files it cannot parse, so its JSON
  report's ``parsing_errors`` are read and treated as failures too. A check that does not
  fit is skipped inline (``// checkov:skip=CKV_X: reason``); a skip without a reason fails.

Exit status: 0 when everything passes, 1 on any problem, 2 when the tools are missing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import flexcheck
import schemacheck
from bicepdoc import Template

DEFAULT_ROOT = Path(__file__).resolve().parent
CHECKS = ("schema", "flex", "checkov")
CHECKOV_TIMEOUT_SECONDS = 600
NO_REASON = {"", "no comment provided"}


@dataclass
class CheckovResult:
    passed: int = 0
    failed: list[str] = field(default_factory=list)
    skipped: int = 0
    unexplained_skips: list[str] = field(default_factory=list)
    parsing_errors: list[str] = field(default_factory=list)


def bicep_files(root: Path) -> list[Path]:
    """Every .bicep file under root, in a stable order."""
    return sorted(p for p in root.rglob("*.bicep") if p.is_file())


def parse(files: list[Path], root: Path) -> tuple[list[Template], list[str]]:
    """The parsed templates, and one 'path: error' line for each file pycep cannot parse."""
    from pycep import BicepParser

    parser = BicepParser()
    templates: list[Template] = []
    problems = []
    for path in files:
        try:
            doc = parser.parse(file_path=path)
        except Exception as exc:  # pycep raises lark errors and ValueError alike
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            problems.append(f"{path}: {type(exc).__name__}: {first_line}")
            continue
        rel = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
        templates.append(Template.from_parsed(path, rel, doc if isinstance(doc, dict) else {}))
    return templates, problems


def _checkov_command() -> list[str]:
    beside = Path(sys.executable).with_name("checkov")
    exe = str(beside) if beside.exists() else shutil.which("checkov")
    if exe is None:
        raise FileNotFoundError("checkov is not installed; pip install -r infra/requirements.txt")
    return [exe]


def _tail(text: str) -> str:
    return text.strip()[-2000:]


def _location(entry: dict[str, Any], root: Path) -> str:
    path = entry.get("file_abs_path") or entry.get("file_path") or "?"
    with contextlib.suppress(ValueError):
        path = str(Path(path).relative_to(root))
    lines = entry.get("file_line_range") or []
    span = f":{lines[0]}-{lines[1]}" if len(lines) == 2 else ""
    return f"{path}{span}"


def checkov_report(root: Path) -> list[Any]:
    """Run checkov's Bicep checks on the files under root: its JSON report, one per framework."""
    command = [
        *_checkov_command(),
        *("--directory", str(root), "--framework", "bicep"),
        *("--skip-download", "--compact", "--output", "json"),
    ]
    proc = subprocess.run(
        command, capture_output=True, text=True, timeout=CHECKOV_TIMEOUT_SECONDS, check=False
    )
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise RuntimeError(
            f"checkov printed no JSON report (exit {proc.returncode}): {_tail(proc.stderr)}"
        ) from exc
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"checkov failed (exit {proc.returncode}): {_tail(proc.stderr)}")
    # One framework gives a dict; a run that found nothing gives a bare summary dict.
    return report if isinstance(report, list) else [report]


def _outside(path: object, root: Path) -> bool:
    """True only for an absolute path that is not under root: an entry without one counts."""
    if not isinstance(path, str) or not Path(path).is_absolute():
        return False
    return not Path(path).resolve().is_relative_to(root.resolve())


def read_checkov(reports: list[Any], root: Path) -> CheckovResult:
    """What checkov's report says about the files under root (a report over a folder holding
    several roots, as the tests run it, has entries for each)."""
    result = CheckovResult()
    for rep in reports:
        results = rep.get("results")
        if results is None:
            continue
        passed = results.get("passed_checks", [])
        result.passed += sum(not _outside(entry.get("file_abs_path"), root) for entry in passed)
        for entry in results.get("failed_checks", []):
            if _outside(entry.get("file_abs_path"), root):
                continue
            where = f"{entry['check_id']} {entry['resource']} ({_location(entry, root)})"
            result.failed.append(f"{where}: {entry['check_name']}")
        for entry in results.get("skipped_checks", []):
            if _outside(entry.get("file_abs_path"), root):
                continue
            result.skipped += 1
            reason = str(entry.get("check_result", {}).get("suppress_comment") or "").strip()
            if reason.lower() in NO_REASON:
                result.unexplained_skips.append(
                    f"{entry['check_id']} {entry['resource']} ({_location(entry, root)})"
                )
        result.parsing_errors.extend(
            str(p) for p in results.get("parsing_errors", []) if not _outside(p, root)
        )
    return result


def run_checkov(root: Path) -> CheckovResult:
    """Run checkov's Bicep checks on root and collect what it reports."""
    return read_checkov(checkov_report(root), root)


def main(argv: list[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument(
        "--root", type=Path, default=DEFAULT_ROOT, help="folder holding the .bicep files"
    )
    args.add_argument(
        "--checks",
        default=",".join(CHECKS),
        help=f"comma-separated checks to run besides syntax (default: {','.join(CHECKS)})",
    )
    ns = args.parse_args(argv)
    checks = {c.strip() for c in str(ns.checks).split(",") if c.strip()}
    if checks - set(CHECKS):
        args.error(f"unknown checks: {', '.join(sorted(checks - set(CHECKS)))}")
    root: Path = ns.root.resolve()

    files = bicep_files(root)
    if not files:
        print(f"infra: no .bicep files under {root}", file=sys.stderr)
        return 1

    schema = schemacheck.Result()
    flex: list[str] = []
    checkov = CheckovResult()
    try:
        templates, syntax = parse(files, root)
        if "schema" in checks:
            schema = schemacheck.check(templates)
        if "flex" in checks:
            flex = flexcheck.check(templates)
        if "checkov" in checks:
            checkov = run_checkov(root)
    except (ImportError, FileNotFoundError, schemacheck.SdkMissing) as exc:
        print(f"infra: tools missing ({exc}); see infra/requirements.txt", file=sys.stderr)
        return 2
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"infra: {exc}", file=sys.stderr)
        return 1

    for line in syntax:
        print(f"PARSE ERROR {line}")
    for line in schema.problems:
        print(f"SCHEMA {line}")
    for line in flex:
        print(f"FLEX {line}")
    for line in checkov.parsing_errors:
        print(f"CHECKOV PARSE ERROR {line}")
    for line in checkov.failed:
        print(f"FAILED {line}")
    for line in checkov.unexplained_skips:
        print(f"SKIP WITHOUT REASON {line}")

    parsed = len(files) - len(syntax)
    if "schema" in checks:
        print(f"infra: REST definitions from {', '.join(schema.sources) or 'none'}")
    summary = [
        f"infra: {parsed} bicep files parsed" + (f" ({len(syntax)} failed)" if syntax else "")
    ]
    if "schema" in checks:
        summary.append(
            f"schema: {schema.resources} resources, {schema.properties} properties and"
            f" {schema.reads} reads checked, {len(schema.problems)} problems"
        )
    if "flex" in checks:
        summary.append(f"flex: {len(flex)} deprecated settings")
    if "checkov" in checks:
        summary.append(
            f"checkov: {checkov.passed} passed, {len(checkov.failed)} failed"
            f", {checkov.skipped} skipped"
            + (f", {len(checkov.parsing_errors)} parsing errors" if checkov.parsing_errors else "")
        )
    print(", ".join(summary))
    failed = syntax or schema.problems or flex or checkov.failed or checkov.parsing_errors
    ok = not (failed or checkov.unexplained_skips)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
