"""The docs cannot rot silently: every file, test, setting, module, class, function, command
and link that README.md and docs/ name exists, and every local command and snippet runs as
written against Azurite and the dev host.

Each fenced ``sh``/``bash``/``python`` block is preceded by a marker saying how it is checked:
``<!-- doc-test: make-run -->`` runs it next to a dev host on this session's Azurite (the one
difference from a real ``make run``: ``127.0.0.1:7071``, ``UseDevelopmentStorage=true`` and
``<token>`` stand for that host, that Azurite and its token; a document's python blocks share
one interpreter, as in a notebook); ``<!-- doc-test: static REASON -->``
(Azure, Core Tools, or a fragment using your own functions) is not run but checked for the
names it uses; ``<!-- doc-test: output -->`` before an unlabelled block says that block is
what the previous make-run block prints (``<...>`` matches anything)."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import json
import os
import re
import shlex
import subprocess
import textwrap
import time
import unicodedata
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.azurite import Azurite, free_port

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PYTHON = ROOT / ".venv" / "bin" / "python"
TOP_MODULES = ("scim_core", "scim_reader", "bench", "tests", "scripts", "devhost",
               "function_app")

GENERATED = {
    "local.settings.json": "created by make run from local.settings.example.json",
    "bench/results/latest.json": "written by make bench (git-ignored)",
    "bench/results/compare.json": "written by python -m bench.compare (git-ignored)",
    ".azurite/": "Azurite's data under make run (git-ignored)",
    "scim_reader/build/": "left by building the reader's wheel in place (git-ignored)",
    "scim_reader/scim_reader.egg-info/": "left by building the reader's wheel in place",
}
"""Files the docs name that exist only after a command has run."""

EXTERNAL_NAMES = {
    # Azure SDK and Functions host environment, Azure CLI / azd environment values.
    "AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_RESOURCE_GROUP",
    "AZURE_PRINCIPAL_TYPE", "FUNCTIONS_EXTENSION_VERSION",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
}
"""Upper-case names the docs use that belong to Azure's tools, not to this repository."""

FENCE = re.compile(r"^[ \t]*```([\w-]*)[^\n]*\n(.*?)^[ \t]*```[ \t]*$", re.MULTILINE | re.DOTALL)
MARKER = re.compile(r"<!-- doc-test: ([\w-]+)(?: ([^>]*?))? -->\s*$")
SPAN = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
MARKERS = {"make-run", "static", "output"}


@dataclasses.dataclass(frozen=True)
class Block:
    doc: Path
    line: int
    lang: str
    code: str
    marker: str | None
    reason: str

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"


@cache
def text_of(doc: Path) -> str:
    return doc.read_text(encoding="utf-8")


@cache
def blocks_of(doc: Path) -> list[Block]:
    text = text_of(doc)
    found = []
    for match in FENCE.finditer(text):
        before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = MARKER.search(before)
        found.append(Block(doc, text.count("\n", 0, match.start()) + 1, match.group(1),
                           textwrap.dedent(match.group(2)), marker.group(1) if marker else None,
                           (marker.group(2) or "") if marker else ""))
    return found


def all_blocks() -> list[Block]:
    return [block for doc in DOCS for block in blocks_of(doc)]


def code_blocks(lang: tuple[str, ...] = ("sh", "bash", "python")) -> list[Block]:
    return [block for block in all_blocks() if block.lang in lang]


def prose(doc: Path) -> str:
    """The document without its fenced blocks."""
    return FENCE.sub("", text_of(doc))


def spans() -> Iterator[tuple[Path, str]]:
    """Every inline code span of every document, with its document."""
    for doc in DOCS:
        for match in SPAN.finditer(prose(doc)):
            yield doc, match.group(1).strip()


@cache
def repo_files() -> frozenset[str]:
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return frozenset(listed.split())


@cache
def python_sources() -> dict[str, str]:
    return {path: (ROOT / path).read_text(encoding="utf-8") for path in repo_files()
            if path.endswith(".py") and (ROOT / path).exists()}


@cache
def repo_identifiers() -> frozenset[str]:
    """Every identifier token of the repository's Python, Bicep, JSON and Makefile."""
    words: set[str] = set()
    for path in repo_files():
        if path.endswith((".py", ".bicep", ".json", "Makefile", ".js")) and (ROOT / path).exists():
            words.update(re.findall(r"[A-Za-z_]\w*", (ROOT / path).read_text(encoding="utf-8")))
    return frozenset(words)


@cache
def sdk_identifiers() -> frozenset[str]:
    """Identifiers of the Azure SDK packages the docs pass options to."""
    import azure.core
    import azure.data.tables

    words: set[str] = set()
    for package in (azure.core, azure.data.tables):
        for path in Path(package.__path__[0]).rglob("*.py"):
            words.update(re.findall(r"[A-Za-z_]\w*", path.read_text(encoding="utf-8")))
    return frozenset(words)


# -- file paths -------------------------------------------------------------------------

PATH = re.compile(r"^\.?[\w.-]+(?:/[\w.-]+)*(?:\.(?:py|md|json|bicep|txt|toml|js|yaml|ini)|/)$")


def is_path(name: str) -> bool:
    """A file path (``a/b.py``, ``x.md``) or a directory (``docs/``), not a dotted code
    name that happens to end like one (``http.Response.json``)."""
    return bool(PATH.match(name)) and ("/" in name or name.count(".") == 1)


def path_exists(name: str, doc: Path) -> bool:
    name = name.removeprefix("./")
    if name in GENERATED or (ROOT / name).exists() or (doc.parent / name).exists():
        return True
    files = repo_files()
    if name.endswith("/"):
        return any(f"/{name}" in f"/{path}" for path in files)
    return any(path == name or path.endswith("/" + name) for path in files)


def test_every_file_the_docs_name_exists() -> None:
    """A backticked file or directory path (``scim_core/store/tables/feed.py``,
    ``tests/test_reader.py``, ``request_parts.py``) names a file of the repository."""
    missing = set()
    for doc, span in spans():
        name = span.split("::", 1)[0].split(" ", 1)[0]
        if is_path(name) and not path_exists(name, doc):
            missing.add(f"{doc.name}: {span}")
    assert not missing, sorted(missing)


def test_every_link_between_the_docs_reaches_a_heading() -> None:
    """A Markdown link to a repository file exists, and its #anchor is one of its headings."""
    broken = []
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)\s]+)\)", prose(doc)):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            file = (doc.parent / path).resolve() if path else doc
            missing_anchor = anchor and file.suffix == ".md" and anchor not in anchors(file)
            if not file.exists() or missing_anchor:
                broken.append(f"{doc.name}: {target}")
    assert not broken, broken


def slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    text = "".join(ch for ch in text if ch in "-_ " or unicodedata.category(ch)[0] in "LN")
    return text.replace(" ", "-")


@cache
def anchors(doc: Path) -> frozenset[str]:
    return frozenset(slug(h) for h in re.findall(r"^#+ (.+)$", prose(doc), re.MULTILINE))


def test_code_points_at_docs_and_sections_that_exist() -> None:
    """Where code or a test cites ``docs/x.md`` (and ``"a section"``), that document, and a
    heading of that name, exist; code never cites the README's sections, nor files outside
    the repository (``../shared/``, a design document)."""
    wrong = []
    for path, source in python_sources().items():
        if path == "tests/test_docs.py":
            continue
        for doc, section in re.findall(r"(docs/[\w-]+\.md)(?:,? \"([^\"]+)\")?", source):
            if not (ROOT / doc).exists():
                wrong.append(f"{path}: {doc}")
            elif section and slug(section) not in anchors(ROOT / doc):
                wrong.append(f"{path}: {doc} {section!r}")
        for cited in re.findall(r"README,? \"[^\"]+\"|shared/\w+|\bdesign\.md\b|"
                                r"entra-scim-behaviour\.md|\bbehaviour §", source):
            wrong.append(f"{path}: {cited}")
    for doc in DOCS:
        for cited in re.findall(r"\.\./shared/|\bdesign\.md\b|entra-scim-behaviour\.md|"
                                r"\bbehaviour §", text_of(doc)):
            wrong.append(f"{doc.name}: {cited}")
    assert not wrong, wrong


# -- tests, settings, commands ----------------------------------------------------------


@cache
def functions_by_test_file() -> dict[str, frozenset[str]]:
    """The test functions of each tests/ file."""
    names = {}
    for path, source in python_sources().items():
        if path.startswith("tests/"):
            tree = ast.parse(source)
            names[Path(path).name] = frozenset(
                node.name for node in ast.walk(tree)
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)))
    return names


def test_every_test_the_docs_name_exists() -> None:
    """A backticked ``test_x`` (or ``test_file.py::test_x``) is a function in tests/ (in that
    file, when one is named)."""
    everywhere = frozenset().union(*functions_by_test_file().values())
    missing = []
    for doc, span in spans():
        for file, name in re.findall(r"(?:(test_\w+\.py)::)?\b(test_\w+)\b(?!\.py)", span):
            known = functions_by_test_file().get(file, frozenset()) if file else everywhere
            if name not in known:
                missing.append(f"{doc.name}: {span}")
    assert not missing, missing


@cache
def settings_read() -> frozenset[str]:
    """``SCIM_*`` names the code reads (a string literal in Python other than this file), the
    template sets or outputs (infra/), or the client examples read (examples/)."""
    found: set[str] = set()
    for path, source in python_sources().items():
        if path != "tests/test_docs.py":
            found.update(re.findall(r"[\"'](SCIM_[A-Z0-9_]+)[\"']", source))
    for path in repo_files():
        if path.startswith(("infra/", "examples/")) and (ROOT / path).is_file():
            found.update(re.findall(r"\b(SCIM_[A-Z0-9_]+)\b", (ROOT / path).read_text()))
    return frozenset(found)


def test_every_setting_the_docs_name_is_read() -> None:
    """Every ``SCIM_*`` name in the docs (prose and blocks) is read by the code or is an
    output of the template; other upper-case names exist in the repository or are Azure's."""
    unknown = set()
    names = repo_identifiers()
    read = settings_read()
    for doc in DOCS:
        text = text_of(doc)
        for name in set(re.findall(r"\b(SCIM_[A-Z0-9_]+)\b", text)):
            if name not in read:
                unknown.add(f"{doc.name}: {name}")
        for _, span in [(d, s) for d, s in spans() if d == doc]:
            for name in re.findall(r"^<?([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)>?$", span):
                if name not in names and name not in EXTERNAL_NAMES:
                    unknown.add(f"{doc.name}: {name}")
    assert not unknown, sorted(unknown)


@cache
def make_targets() -> frozenset[str]:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    return frozenset(re.findall(r"^([\w-]+):", makefile, re.MULTILINE))


def block_commands() -> Iterator[tuple[str, str]]:
    """Every command line of the docs' sh blocks, and of their console transcripts (the
    lines after a ``$`` prompt), with where it is."""
    for block in code_blocks(("sh", "bash", "console")):
        joined = re.sub(r"\\\n\s*", " ", block.code)
        for line in joined.splitlines():
            if block.lang == "console":
                if line.startswith("$ "):
                    yield block.where, line[2:].strip()
            elif line.strip() and not line.lstrip().startswith("#"):
                yield block.where, line.strip()


def commands() -> Iterator[tuple[str, str]]:
    """Every command of the docs' sh blocks and inline spans, with where it is."""
    yield from block_commands()
    for doc, span in spans():
        if re.match(r"(\S*python |make |az |azd |func )", span):
            yield doc.name, span


def admin_arguments(line: str) -> list[str] | None:
    """The arguments of a ``python -m scim_core.admin`` command, placeholders filled in."""
    found = re.search(r"python -m scim_core\.admin(.*)", line)
    if not found:
        return None
    command = found.group(1).split("#", 1)[0].split(" | ")[0]
    command = re.sub(r"<[^>]*vault[^>]*>", "https://vault.example", command, flags=re.I)
    command = re.sub(r"<[^>]*>", "placeholder", command)
    words = [w.strip("[]") for w in shlex.split(command, posix=True)]
    return [w for w in words if w and w not in ("...", "…")]


def test_admin_commands_in_the_docs_parse() -> None:
    """Every ``python -m scim_core.admin …`` in the docs is a subcommand with options the
    admin's parser accepts; a block runs it with the project's ``.venv/bin/python``."""
    from scim_core import admin

    bad = []
    for where, line in commands():
        args = admin_arguments(line)
        if args is None or not args:
            continue
        try:
            admin._parser().parse_args(args)
        except SystemExit:
            bad.append(f"{where}: {line}")
    assert not bad, bad


def test_block_commands_run_with_the_projects_environment() -> None:
    """No block starts a bare ``python`` but to pip-install into your own app (the project's
    packages live in .venv), or runs
    ``.venv/bin/activate`` without ``source``; every ``python -m`` module and every ``make``
    target named exists."""
    import importlib.util

    bad = []
    for where, line in block_commands():
        if re.match(r"python3? ", line) and not re.match(r"python3? -m pip ", line):
            bad.append(f"{where}: {line}")  # pip into your own app's environment is fine
        if re.search(r"(?<!source )(?<!\. )\.venv/bin/activate", line):
            bad.append(f"{where}: {line}")
    for where, line in commands():
        for module in re.findall(r"python3? -m ([\w.]+)", line):
            if importlib.util.find_spec(module) is None:
                bad.append(f"{where}: no module {module}")
        for target in re.findall(r"(?:^|[;&|] *|PORT=\S+ |SCIM_STORE=\S+ )make ([\w-]+)", line):
            if target not in make_targets():
                bad.append(f"{where}: make {target}")
    assert not bad, bad


@cache
def bicep() -> str:
    return (ROOT / "infra" / "main.bicep").read_text(encoding="utf-8")


def test_template_parameters_and_outputs_the_docs_use_exist() -> None:
    """Every ``--parameters name=…`` in the docs is a parameter of infra/main.bicep, and every
    deployment output they name (``<FUNCTION_APP_NAME>``) is one of its outputs."""
    params = set(re.findall(r"^param (\w+) ", bicep(), re.MULTILINE))
    outputs = set(re.findall(r"^output (\w+) ", bicep(), re.MULTILINE))
    bad = []
    for where, line in commands():
        for given in re.findall(r"--parameters (.*)", line):
            for name in re.findall(r"'?\b(\w+)=", given):
                if name not in params:
                    bad.append(f"{where}: parameter {name}")
        for name in re.findall(r"<([A-Z_]+)>", line):
            if name not in outputs:
                bad.append(f"{where}: output {name}")
    for doc in DOCS:
        for name in re.findall(r"outputs? `([A-Z_]+)`", text_of(doc)):
            if name not in outputs:
                bad.append(f"{doc.name}: output {name}")
    assert not bad, bad


# -- modules, classes, functions --------------------------------------------------------


@cache
def classes() -> dict[str, list[tuple[str, str]]]:
    """Class name -> [(module, source path)] over the repository's Python."""
    found: dict[str, list[tuple[str, str]]] = {}
    for path, source in python_sources().items():
        module = path.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ClassDef):
                found.setdefault(node.name, []).append((module, path))
    return found


@cache
def modules_named(name: str) -> list[str]:
    """Modules of the repository whose dotted path ends with ``name`` (``patch.engine``)."""
    wanted = name.replace("/", ".")
    found = []
    for path in python_sources():
        module = path.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
        if module == wanted or module.endswith("." + wanted):
            found.append(module)
    return found


def has_attribute(owner: Any, attribute: str, source: str | None = None) -> bool:
    if hasattr(owner, attribute):
        return True
    for klass in getattr(owner, "__mro__", ()):
        if attribute in getattr(klass, "__annotations__", {}):
            return True
    return source is not None and f"self.{attribute} " in source


def chain_exists(owner: Any, attributes: list[str]) -> bool:
    for attribute in attributes:
        if not has_attribute(owner, attribute):
            return False
        owner = getattr(owner, attribute, None)
    return True


SCIM_PATHS = {"members", "emails", "name", "meta", "groups", "filter", "bulk", "pagination",
              "sort", "patch", "changePassword", "etag", "phoneNumbers", "addresses", "manager",
              "roles", "user", "event", "page", "tenant", "group", "deletion", "directory",
              "reader", "api"}
"""First parts of dotted spans that are SCIM attribute paths or snippet variables, not
modules (``members.value``, ``filter.maxResults``, ``user.attributes``)."""


def installed(parts: list[str]) -> bool:
    """Whether a dotted name resolves in an installed (non-repository) package."""
    for cut in range(len(parts), 0, -1):
        try:
            module = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        origin = str(getattr(module, "__file__", "") or "")
        return not origin.startswith(str(ROOT) + "/scim") and chain_exists(module, parts[cut:])
    return False


def resolves(name: str) -> bool | None:
    """Whether a dotted code name exists (None: not a code name this test knows)."""
    name = name.removesuffix("()")
    parts = name.split(".")
    if len(parts) < 2 or not all(re.fullmatch(r"[A-Za-z_]\w*", p) for p in parts):
        return None
    if parts[0] in SCIM_PATHS:
        return None
    if installed(parts):
        return True
    if parts[0] in TOP_MODULES:
        for cut in range(len(parts), 0, -1):
            try:
                module = importlib.import_module(".".join(parts[:cut]))
            except ImportError:
                continue
            return chain_exists(module, parts[cut:])
        return False
    if parts[0] in classes() and len(parts) == 2:
        for dotted, path in classes()[parts[0]]:
            owner = getattr(importlib.import_module(dotted), parts[0], None)
            if owner is not None and has_attribute(owner, parts[1], python_sources()[path]):
                return True
        return False
    for cut in range(len(parts), 0, -1):
        for dotted in modules_named(".".join(parts[:cut])):
            if chain_exists(importlib.import_module(dotted), parts[cut:]):
                return True
        if modules_named(".".join(parts[:cut])):
            return False
    return None


def test_every_module_class_and_function_the_docs_name_exists() -> None:
    """Dotted names (``scim_core.auth.credentials``, ``TenantAdmin.disable``,
    ``validation.coerce``, ``patch/engine.apply_patch``) import and resolve, and every
    snake_case name (``membership_events``, ``install_batch_codec()``) is an identifier of
    the code or of the Azure SDK it configures."""
    missing = []
    words = repo_identifiers() | sdk_identifiers()
    for doc, span in spans():
        name = span.replace("/", ".") if re.fullmatch(r"[\w/]+\.\w+(\(\))?", span) else span
        if is_path(span):
            continue
        snake = re.fullmatch(r"_?[a-z][a-z0-9]*(?:_[a-z][a-z0-9]*)+(\(\))?", span)
        unknown_snake = snake is not None and span.removesuffix("()") not in words
        if resolves(name) is False or unknown_snake:
            missing.append(f"{doc.name}: {span}")
    assert not missing, missing


# -- every block says how it is checked --------------------------------------------------


def test_every_block_says_how_it_is_checked() -> None:
    """Each sh, bash and python block carries a doc-test marker (static ones with a reason),
    and every output marker follows a make-run block."""
    bad = [f"{block.where}: unknown marker {block.marker}" for block in all_blocks()
           if block.marker is not None and block.marker not in MARKERS]
    for block in code_blocks():
        if block.marker not in ("make-run", "static"):
            bad.append(f"{block.where}: no doc-test marker")
        elif block.marker == "static" and not block.reason:
            bad.append(f"{block.where}: static without a reason")
    for doc in DOCS:
        previous = None
        for block in blocks_of(doc):
            if block.marker == "output" and (previous is None or previous.marker != "make-run"):
                bad.append(f"{block.where}: output marker not after a make-run block")
            if block.lang:
                previous = block
    assert not bad, bad


def test_static_python_blocks_compile_and_import() -> None:
    """A python block that is not run still compiles, its imports succeed, and the methods
    it calls on a reader, a tenant reader or the admin exist."""
    from scim_core.operations.tenants import TenantAdmin
    from scim_reader import DirectoryReader, TenantReader
    from scim_reader.events import EventPage
    from scim_reader.listing import Page
    from scim_reader.models import Event, Group, Member, User

    owners: dict[str, tuple[Any, ...]] = {
        "reader": (DirectoryReader,), "directory": (TenantReader,), "acme": (TenantReader,),
        "admin": (TenantAdmin,), "event": (Event,), "user": (User,), "alice": (User,),
        "group": (Group,), "member": (Member,), "page": (EventPage, Page),
    }
    bad = []
    for block in code_blocks(("python",)):
        tree = ast.parse(block.code)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                exec(compile(ast.Module([node], []), block.where, "exec"), {})
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in owners
                    and not any(has_attribute(o, node.attr) for o in owners[node.value.id])):
                bad.append(f"{block.where}: {node.value.id}.{node.attr}")
    assert not bad, bad


# -- the layout's test vectors ----------------------------------------------------------

VECTORS = json.loads((ROOT / "docs" / "layout-vectors.json").read_text(encoding="utf-8"))


def store_layout(function: str, args: list[Any]) -> Any:
    from scim_core.kinds import Kind
    from scim_core.store.tables import keys

    kinds = {"user": Kind.USER, "group": Kind.GROUP}
    if function in ("document_key", "unique_index_key", "index_key", "documents_range"):
        args = [kinds[args[0]], *args[1:]]
    return getattr(keys, function)(*args)


def test_layout_vectors_hold_for_the_store() -> None:
    """docs/layout-vectors.json: the store encodes, shortens, folds and keys every vector as
    docs/host-app.md states."""
    from scim_core.schema.indexes import IndexSpec
    from scim_core.store.tables import keys
    from scim_core.store.tables.feed import event_key

    assert VECTORS["component_budget"] == keys.COMPONENT_BUDGET
    for case in VECTORS["encode_component"]:
        assert keys.encode_component(case["value"]) == case["expected"], case["value"][:40]
    folds = [f.name for f in dataclasses.fields(IndexSpec)]
    assert "case_exact" in folds
    for case in VECTORS["casefold"]:
        assert case["value"].casefold() == case["expected"]
    for case in VECTORS["keys"]:
        found = store_layout(case["function"], case["args"])
        assert (list(found) if isinstance(found, tuple) else found) == case["expected"], case
    for case in VECTORS["event_key"]:
        assert event_key(case["position"]) == case["expected"]


def test_layout_vectors_hold_for_the_reader() -> None:
    """docs/layout-vectors.json: scim_reader encodes, folds and keys every vector it has a
    function for exactly as the store does."""
    from scim_reader import layout

    assert VECTORS["component_budget"] == layout.COMPONENT_BUDGET
    for case in VECTORS["encode_component"]:
        assert layout.encode_component(case["value"]) == case["expected"], case["value"][:40]
    for case in VECTORS["casefold"]:
        assert layout.folded(case["value"]) == case["expected"]
    checked = 0
    for case in VECTORS["keys"]:
        function = getattr(layout, case["function"], None)
        if function is not None:
            found = function(*case["args"])
            assert (list(found) if isinstance(found, tuple) else found) == case["expected"]
            checked += 1
    assert checked >= 6
    for case in VECTORS["event_key"]:
        assert layout.event_key(case["position"]) == case["expected"]


# -- running the local blocks -----------------------------------------------------------


@dataclasses.dataclass
class DevHost:
    port: int
    token: str
    env: dict[str, str]


@pytest.fixture(scope="module")
def dev_host(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevHost]:
    """The dev host as ``make run`` starts it, on Table Storage in this session's Azurite,
    table ``scim``, on a free port."""
    port = free_port()
    token = "doc-test-token-" + os.urandom(8).hex()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("SCIM_", "AZURE_"))}
    env.update(SCIM_STORE="tables", SCIM_TABLES_CONNECTION=azurite.connection_string,
               SCIM_TABLE_NAME="scim", SCIM_BEARER_TOKEN=token, SCIM_KEYVAULT_URL="",
               SCIM_BASE_URL="", SCIM_EVENTS_QUEUE="", PORT=str(port))
    log = (tmp_path_factory.mktemp("devhost") / "devhost.log").open("wb")
    process = subprocess.Popen([str(PYTHON), "-m", "devhost", "--port", str(port)], cwd=ROOT,
                               env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not azurite_answers(port):
            assert process.poll() is None, "the dev host exited"
            assert time.monotonic() < deadline, "the dev host did not start"
            time.sleep(0.1)
        yield DevHost(port, token, env)
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def azurite_answers(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def localised(code: str, host: DevHost, azurite: Azurite) -> str:
    return (code.replace("127.0.0.1:7071", f"127.0.0.1:{host.port}")
            .replace("localhost:7071", f"127.0.0.1:{host.port}")
            .replace("UseDevelopmentStorage=true", azurite.connection_string)
            .replace("<token>", host.token))


SESSION = """
import contextlib, io, json, sys, traceback
namespace = {"__name__": "__main__"}
for line in sys.stdin:
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(json.loads(line), "<doc block>", "exec"), namespace)
        answer = {"ok": True, "out": out.getvalue()}
    except BaseException:
        answer = {"ok": False, "out": out.getvalue() + traceback.format_exc()}
    sys.__stdout__.write(json.dumps(answer) + "\\n")
    sys.__stdout__.flush()
"""
"""One interpreter for a document's python blocks, which share their names as in a notebook."""


class Session:
    """A document's blocks: shell blocks each in bash, python blocks in one interpreter."""

    def __init__(self, host: DevHost, azurite: Azurite, table: str) -> None:
        self.host, self.azurite = host, azurite
        self.env = {**host.env, "SCIM_TABLE_NAME": table}
        self.python = subprocess.Popen([str(PYTHON), "-c", SESSION], cwd=ROOT, env=self.env,
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       text=True)

    def run(self, block: Block) -> str:
        code = localised(block.code, self.host, self.azurite)
        if block.lang == "python":
            assert self.python.stdin and self.python.stdout
            self.python.stdin.write(json.dumps(code) + "\n")
            self.python.stdin.flush()
            answer = json.loads(self.python.stdout.readline() or '{"ok": false, "out": ""}')
            assert answer["ok"], f"{block.where} failed:\n{answer['out']}"
            return str(answer["out"])
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{block.where} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def close(self) -> None:
        if self.python.stdin:
            self.python.stdin.close()
        self.python.wait(timeout=30)


def expected_output(block: Block, host: DevHost) -> re.Pattern[str]:
    lines = [re.escape(line.strip()).replace(r"127\.0\.0\.1:7071",
                                             rf"127\.0\.0\.1:{host.port}")
             for line in block.code.strip().splitlines()]
    pattern = r"\n".join(re.sub(r"<[^>]*>", ".+", line) for line in lines)
    return re.compile(pattern.replace(r"\<", "<").replace(r"\>", ">"))


RUN_DOCS = [doc for doc in DOCS if any(b.marker == "make-run" for b in blocks_of(doc))]


@pytest.mark.parametrize("doc", RUN_DOCS, ids=[d.name for d in RUN_DOCS])
def test_local_blocks_run_as_written(doc: Path, dev_host: DevHost, azurite: Azurite) -> None:
    """Each make-run block of the document runs, in order, next to a dev host on Azurite,
    and prints what the output block after it shows. The README and host-app.md read the dev
    host's table (where the README's tenant is); other documents start from an empty table
    of their own."""
    shared = doc.name in ("README.md", "host-app.md")
    session = Session(dev_host, azurite, "scim" if shared else "doc" + os.urandom(4).hex())
    printed = None
    try:
        for block in blocks_of(doc):
            if block.marker == "make-run":
                printed = session.run(block)
            elif block.marker == "output":
                assert printed is not None
                pattern = expected_output(block, dev_host)
                assert pattern.search(printed), f"{block.where}: {printed!r} !~ {pattern.pattern}"
    finally:
        session.close()


def test_the_printed_tenant_url_is_the_dev_hosts(dev_host: DevHost, azurite: Azurite) -> None:
    """Next to a dev host on another PORT, ``tenant create`` prints a Tenant URL on that port,
    and that URL with the printed token answers 200."""
    import urllib.request

    env = {**dev_host.env, "SCIM_TABLE_NAME": "scim"}
    tenant = "port" + os.urandom(3).hex()
    done = subprocess.run([str(PYTHON), "-m", "scim_core.admin", "tenant", "create", "--name",
                           "Port", "--id", tenant], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60, check=True)
    url = re.search(r"Tenant URL:\s+(\S+)", done.stdout)
    token = re.search(r"Secret Token:\s+(\S+)", done.stdout)
    assert url and token, done.stdout
    assert url.group(1) == f"http://127.0.0.1:{dev_host.port}/tenants/{tenant}/scim/v2"
    request = urllib.request.Request(url.group(1) + "/Users",
                                     headers={"Authorization": f"Bearer {token.group(1)}"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 200


def test_performance_and_reliability_state_their_current_figures() -> None:
    """docs/performance.md and docs/reliability.md each open their figures with the date,
    the revision, the machine and the method of the run they report."""
    for name in ("performance.md", "reliability.md"):
        text = text_of(ROOT / "docs" / name)
        section = text.split("\n## Current figures\n", 1)
        assert len(section) == 2, f"{name} has no 'Current figures' section"
        head = section[1][:1500]
        assert re.search(r"\b20\d\d-\d\d-\d\d\b", head), name
        assert re.search(r"revision `?[0-9a-f]{7,40}`?", head), name
        assert "machine" in head.lower() and "method" in head.lower(), name
