"""Schema check: every resource type, API version and property path exists in Azure's REST API.

The source of truth is the Azure management SDKs for Python (azure-mgmt-*, pinned in
infra/requirements.txt). Each is generated from the REST API specifications, per API version:
its operation modules hold the request URL, HTTP method and api-version of every operation,
and its msrest models hold, in `_attribute_map`, the REST name and type of every property
(flattened `properties.x` paths included) and, in `_validation`, which are read-only. The
check parses that source with `ast`; it never imports the SDKs.

For every resource declared in infra/**/*.bicep it checks that:

* the provider has an SDK in `PROVIDER_PACKAGES` and that SDK carries the API version;
* the resource type has a PUT operation at that version (a GET or any operation for an
  `existing` resource), and a literal `name` is one the URL accepts (`ftp`, `scm`, ...);
* every key of the body, at every depth, is a property of the request model of that PUT,
  not read-only, and with the right shape (object, array, map or scalar literal), following
  variables, `?:`, for-expressions and merging functions (union, concat, ...);
* every `symbol.path` read of a resource in the same file (outputs, parameters of modules,
  string interpolation) exists in the GET response model, and every `module.outputs.x` and
  module parameter exists in that module.

`REST_GAPS` lists the few properties that Azure needs and the REST definition lacks; each
names its evidence.

Which SDK release carries which API version (in a multi-API release, the `vYYYY_MM_DD`
folders; in a single-API release, the default api-version of its operations):

| provider | templates use | pin |
|---|---|---|
| Microsoft.Web | 2024-11-01 | azure-mgmt-web 9.0.0 (multi-API, 2016-03-01 to 2024-11-01) |
| Microsoft.Storage | 2024-01-01 | azure-mgmt-storage 23.0.0 |
| Microsoft.KeyVault | 2024-11-01 | azure-mgmt-keyvault 12.0.0 |
| Microsoft.Authorization | 2022-04-01 | azure-mgmt-authorization 4.0.0 (multi-API) |
| Microsoft.OperationalInsights | 2025-07-01 | azure-mgmt-loganalytics 13.1.1 |
| Microsoft.Insights (components) | 2020-02-02 | azure-mgmt-applicationinsights 4.1.0 (multi-API) |
| Microsoft.Insights (diagnostics) | 2021-05-01-preview | azure-mgmt-monitor 6.0.2 (multi-API) |
"""

from __future__ import annotations

import ast
import difflib
import re
import sys
import sysconfig
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from bicepdoc import (
    ACCESSORS,
    PASS_THROUGH_FUNCTIONS,
    Resource,
    Template,
    accessor_chains,
    function,
    key_name,
    loop_element,
    operator,
)

# Resource provider namespace (lower case) -> the SDK distributions that define it.
PROVIDER_PACKAGES: dict[str, tuple[str, ...]] = {
    "microsoft.web": ("azure-mgmt-web",),
    "microsoft.storage": ("azure-mgmt-storage",),
    "microsoft.keyvault": ("azure-mgmt-keyvault",),
    "microsoft.authorization": ("azure-mgmt-authorization",),
    "microsoft.operationalinsights": ("azure-mgmt-loganalytics",),
    "microsoft.insights": ("azure-mgmt-applicationinsights", "azure-mgmt-monitor"),
}

# (resource type, top-level property) pairs that Azure accepts, or requires, though the REST
# definition does not declare them.
REST_GAPS: dict[tuple[str, str], str] = {
    ("microsoft.web/sites/basicpublishingcredentialspolicies", "location"): (
        "the Web resource provider answers 51008 without it (Azure/bicep-types-az#1317)"
    ),
}

# Keys of a resource body that are Bicep's, not the REST body's.
BICEP_KEYS = {"name", "parent", "scope", "dependsOn"}
# What `symbol.<key>` gives for any resource, besides the response model's own properties.
SYMBOL_KEYS = {"id", "name", "type", "apiVersion"}
SCALARS = {
    "str",
    "bool",
    "int",
    "long",
    "float",
    "decimal",
    "iso-8601",
    "rfc-1123",
    "duration",
    "date",
    "time",
    "unix-time",
    "bytearray",
    "base64",
}
NUMBERS = {"int", "long", "float", "decimal", "unix-time"}
VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")
UNESCAPED_DOT = re.compile(r"(?<!\\)\.")
URL_LITERAL = re.compile(r'"(/[^"\s]*/providers/[^"\s]*)"')
API_VERSION_LITERAL = re.compile(r'"api[-_]version",\s*"(\d{4}-\d{2}-\d{2}(?:-preview)?)"')


class SdkMissing(Exception):
    """An SDK that PROVIDER_PACKAGES names is not installed."""


# --- the REST definitions, read from the SDK source ----------------------------------------


@dataclass
class Leaf:
    type: str
    readonly: bool


@dataclass
class Node:
    """One level of a model's properties: REST name -> Leaf or deeper Node (flattened)."""

    children: dict[str, Leaf | Node] = field(default_factory=dict)


@dataclass
class Model:
    name: str
    attributes: list[tuple[list[str], str, bool]]  # REST path, type, read-only
    subtypes: list[str]


@dataclass(frozen=True)
class Operation:
    method: str
    provider: str
    types: tuple[str, ...]
    last_name: str | None  # a literal last name segment (…/policies/ftp), else None
    api_version: str
    request_model: str | None
    response_models: tuple[str, ...]


@dataclass
class VersionSource:
    """The REST definitions of one API version, from one SDK folder, read as needed.

    An operations module is parsed only when one of its URL templates addresses a resource
    type the templates use; the models module is parsed on first use.
    """

    package: str
    version: str
    folder: Path
    _texts: dict[Path, str] = field(default_factory=dict)
    _parsed: dict[Path, list[Operation]] = field(default_factory=dict)
    _models: dict[str, Model] | None = None
    _nodes: dict[str, Node] = field(default_factory=dict)

    @property
    def files(self) -> list[Path]:
        return _operation_files(self.folder / "operations")

    def text(self, path: Path) -> str:
        if path not in self._texts:
            self._texts[path] = path.read_text(encoding="utf-8")
        return self._texts[path]

    def type_paths(self, provider: str) -> list[str]:
        """Every resource type of the provider that some URL of this version addresses."""
        found = set()
        for path in self.files:
            for url in URL_LITERAL.findall(self.text(path)):
                shape = _url_shape(url)
                if shape and shape[0].lower() == provider.lower():
                    found.add("/".join((shape[0], *shape[1])))
        return sorted(found)

    def operations(self, provider: str, types: tuple[str, ...]) -> list[Operation]:
        """The operations of this version whose URL addresses one resource of that type."""
        wanted = (provider.lower(), tuple(t.lower() for t in types))
        result = []
        for path in self.files:
            shapes = {_url_shape(url) for url in URL_LITERAL.findall(self.text(path))}
            if not any(
                s and (s[0].lower(), tuple(x.lower() for x in s[1])) == wanted for s in shapes
            ):
                continue
            if path not in self._parsed:
                self._parsed[path] = _operations(ast.parse(self.text(path)))
            result += [
                op
                for op in self._parsed[path]
                if op.api_version == self.version
                and (op.provider.lower(), tuple(t.lower() for t in op.types)) == wanted
            ]
        return result

    @property
    def models(self) -> dict[str, Model]:
        if self._models is None:
            self._models = _models(self.folder / "models")
        return self._models

    def node(self, model_name: str) -> Node | None:
        """The property tree of a model, with the properties of its subtypes merged in."""
        if model_name not in self.models:
            return None
        if model_name not in self._nodes:
            node = Node()
            self._nodes[model_name] = node
            for name in self._family(model_name, set()):
                for path, type_, readonly in self.models[name].attributes:
                    _insert(node, path, Leaf(type_, readonly))
        return self._nodes[model_name]

    def _family(self, name: str, seen: set[str]) -> list[str]:
        if name in seen or name not in self.models:
            return []
        seen.add(name)
        names = [name]
        for sub in self.models[name].subtypes:
            names.extend(self._family(sub, seen))
        return names


def _insert(node: Node, path: list[str], leaf: Leaf) -> None:
    head, rest = path[0], path[1:]
    if not rest:
        node.children.setdefault(head, leaf)
        return
    child = node.children.get(head)
    if not isinstance(child, Node):
        child = Node()
        node.children[head] = child
    _insert(child, rest, leaf)


def _site_packages() -> list[Path]:
    paths = [Path(sysconfig.get_paths()["purelib"]), Path(sysconfig.get_paths()["platlib"])]
    paths += [Path(p) for p in sys.path if p]
    unique: list[Path] = []
    for path in paths:
        if path not in unique and path.is_dir():
            unique.append(path)
    return unique


def _package_dir(distribution: str) -> Path:
    relative = Path(*distribution.split("-")[:2], "-".join(distribution.split("-")[2:]))
    for base in _site_packages():
        candidate = base / relative
        if (candidate / "__init__.py").exists():
            return candidate
    raise SdkMissing(f"{distribution} is not installed")


class Sources:
    """The installed SDKs, read lazily: one folder per (package, API version)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], VersionSource | None] = {}
        self.read: list[str] = []

    def package_version(self, distribution: str) -> str:
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError as exc:
            raise SdkMissing(f"{distribution} is not installed") from exc

    def versions(self, distribution: str) -> list[str]:
        """Every API version this SDK release carries."""
        root = _package_dir(distribution)
        found = {
            d.name[1:].replace("_", "-")
            for d in root.iterdir()
            if d.is_dir() and re.fullmatch(r"v\d{4}_\d{2}_\d{2}(_preview)?", d.name)
        }
        for path in _operation_files(root / "operations"):
            found |= set(API_VERSION_LITERAL.findall(path.read_text(encoding="utf-8")))
        return sorted(found)

    def source(self, distribution: str, version: str) -> VersionSource | None:
        key = (distribution, version)
        if key not in self._cache:
            self._cache[key] = self._load(distribution, version)
        return self._cache[key]

    def _load(self, distribution: str, version: str) -> VersionSource | None:
        root = _package_dir(distribution)
        folder = root / ("v" + version.replace("-", "_"))
        if not folder.is_dir():
            folder = root
            texts = (p.read_text(encoding="utf-8") for p in _operation_files(root / "operations"))
            if not any(version in API_VERSION_LITERAL.findall(text) for text in texts):
                return None
        label = f"{distribution} {self.package_version(distribution)}"
        self.read.append(f"{label} ({version})")
        return VersionSource(package=label, version=version, folder=folder)


def _string(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _operation_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("_*operations.py")) if folder.is_dir() else []


def _builders(tree: ast.Module) -> list[tuple[str, str, str, str]]:
    result = []
    for fn in tree.body:
        if not (isinstance(fn, ast.FunctionDef) and fn.name.startswith("build_")):
            continue
        method = url = version = None
        for node in ast.walk(fn):
            if isinstance(node, ast.Call):
                for kw in node.keywords:
                    if kw.arg == "method" and _string(kw.value):
                        method = _string(kw.value)
                for arg in node.args:
                    text = _string(arg)
                    if text and text.startswith("/") and "/providers/" in text:
                        url = text
                    if text and VERSION.match(text):
                        version = text
        if method and url and version:
            result.append((fn.name, method, url, version))
    return result


def _operations(tree: ast.Module) -> list[Operation]:
    """Every operation of one operations module that addresses one resource."""
    operations: list[Operation] = []
    builders = {b[0]: b for b in _builders(tree)}
    requests: dict[str, set[str]] = {}
    responses: dict[str, set[str]] = {}
    for cls in tree.body:
        if not isinstance(cls, ast.ClassDef):
            continue
        for fn in cls.body:
            if isinstance(fn, ast.FunctionDef):
                _link(fn, builders, requests, responses)
    for name, (_, method, url, version) in builders.items():
        shape = _url_shape(url)
        if shape is None:
            continue
        provider, types, last_name = shape
        request = sorted(requests.get(name, set()))
        operations.append(
            Operation(
                method=method,
                provider=provider,
                types=types,
                last_name=last_name,
                api_version=version,
                request_model=request[0] if request else None,
                response_models=tuple(sorted(responses.get(name, set()))),
            )
        )
    return operations


def _link(
    fn: ast.FunctionDef,
    builders: dict[str, tuple[str, str, str, str]],
    requests: dict[str, set[str]],
    responses: dict[str, set[str]],
) -> None:
    """Record which models an operation method sends and receives through which builder."""
    called: set[str] = set()
    sent: set[str] = set()
    received: set[str] = set()
    for node in ast.walk(fn):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in builders:
            called.add(func.id)
        if isinstance(func, ast.Attribute) and func.attr == "body" and len(node.args) >= 2:
            model = _string(node.args[1])
            if model:
                sent.add(model)
        if (
            isinstance(func, ast.Attribute)
            and func.attr == "_deserialize"
            and node.args
            and _string(node.args[0])
        ):
            received.add(str(_string(node.args[0])))
    for name in called:
        requests.setdefault(name, set()).update(sent)
        responses.setdefault(name, set()).update(received)


def _url_shape(url: str) -> tuple[str, tuple[str, ...], str | None] | None:
    """The provider, types and literal last name a resource URL addresses.

    `…/providers/Microsoft.Web/sites/{name}/config/web` gives
    ('Microsoft.Web', ('sites', 'config'), 'web').

    None when the URL does not address one resource (a collection or an action).
    """
    tail = url.rsplit("/providers/", 1)[1]
    parts = [p for p in tail.split("/") if p]
    if len(parts) < 3 or len(parts) % 2 == 0:
        return None
    provider, rest = parts[0], parts[1:]
    types = tuple(rest[0::2])
    names = rest[1::2]
    if any(t.startswith("{") for t in types):
        return None
    last = names[-1]
    return provider, types, None if last.startswith("{") else last


def _models(folder: Path) -> dict[str, Model]:
    models: dict[str, Model] = {}
    for path in (folder / "_models_py3.py", folder / "_models.py"):
        if not path.exists():
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for cls in tree.body:
            if isinstance(cls, ast.ClassDef) and cls.name not in models:
                model = _model(cls)
                if model is not None:
                    models[cls.name] = model
        if models:
            break
    return models


def _model(cls: ast.ClassDef) -> Model | None:
    values: dict[str, Any] = {}
    for stmt in cls.body:
        target = value = None
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target, value = stmt.targets[0], stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            target, value = stmt.target, stmt.value
        if isinstance(target, ast.Name) and target.id in {
            "_attribute_map",
            "_validation",
            "_subtype_map",
        }:
            try:
                values[target.id] = ast.literal_eval(value) if value is not None else {}
            except ValueError:
                values[target.id] = {}
    if "_attribute_map" not in values:
        return None
    validation = values.get("_validation") or {}
    attributes = []
    for attr, spec in values["_attribute_map"].items():
        key = str(spec.get("key", ""))
        if not key:
            continue
        path = [part.replace("\\.", ".") for part in UNESCAPED_DOT.split(key)]
        readonly = bool((validation.get(attr) or {}).get("readonly"))
        attributes.append((path, str(spec.get("type", "object")), readonly))
    subtypes = [
        str(sub)
        for mapping in (values.get("_subtype_map") or {}).values()
        for sub in mapping.values()
    ]
    return Model(name=cls.name, attributes=attributes, subtypes=subtypes)


# --- checking the templates ----------------------------------------------------------------


@dataclass
class Result:
    problems: list[str] = field(default_factory=list)
    resources: int = 0
    properties: int = 0
    reads: int = 0
    sources: list[str] = field(default_factory=list)


@dataclass
class Target:
    """Where a resource's REST definitions are: its operations and models at its version."""

    source: VersionSource
    operations: list[Operation]


class Checker:
    def __init__(self, sources: Sources, result: Result) -> None:
        self.sources = sources
        self.result = result

    # -- resource type and version

    def target(self, resource: Resource, where: str) -> Target | None:
        provider, _, type_path = resource.type.partition("/")
        packages = PROVIDER_PACKAGES.get(provider.lower())
        if not packages or not type_path:
            self.problem(
                where,
                f"no REST definitions for provider {provider!r}: add its azure-mgmt package to "
                "infra/requirements.txt and to PROVIDER_PACKAGES in infra/schemacheck.py",
            )
            return None
        target = self.target_quiet(resource)
        if target is not None:
            return target
        for package in packages:
            source = self.sources.source(package, resource.api_version)
            known = source.type_paths(provider) if source is not None else []
            if known:
                hint = difflib.get_close_matches(resource.type, known, n=1, cutoff=0.6)
                self.problem(
                    where,
                    f"resource type {resource.type} does not exist at {resource.api_version} in "
                    f"{source.package if source else package}"
                    + (f" (did you mean {hint[0]}?)" if hint else ""),
                )
                return None
        covered = "; ".join(
            f"{package} {self.sources.package_version(package)}: "
            + ", ".join(self.sources.versions(package))
            for package in packages
        )
        self.problem(
            where,
            f"API version {resource.api_version} of {provider} is not in the installed REST "
            f"definitions ({covered})",
        )
        return None

    # -- resource bodies

    def check_resource(self, template: Template, resource: Resource) -> None:
        where = f"{template.rel}: {resource.label}"
        target = self.target(resource, where)
        self.result.resources += 1
        if target is None or resource.existing:
            return
        puts = [op for op in target.operations if op.method == "PUT" and op.request_model]
        if not puts:
            self.problem(where, f"{resource.type} has no PUT operation at {resource.api_version}")
            return
        name = resource.body.get("name")
        if isinstance(name, str) and any(op.last_name for op in puts):
            literal = [op for op in puts if (op.last_name or "").lower() == name.lower()]
            generic = [op for op in puts if op.last_name is None]
            is_symbol = name in template.parameters or template.variable(name) is not None
            if literal:
                puts = literal
            elif generic:
                puts = generic
            elif not is_symbol:
                names = ", ".join(sorted({str(op.last_name) for op in puts}))
                self.problem(where, f"name {name!r} is not one the REST API accepts ({names})")
                return
        body = {k: v for k, v in resource.body.items() if key_name(k) not in BICEP_KEYS}
        gaps = {prop for (kind, prop) in REST_GAPS if kind == resource.type.lower()}
        body = {k: v for k, v in body.items() if key_name(k) not in gaps}
        attempts: list[list[str]] = []
        for model in sorted({str(op.request_model) for op in puts}):
            node = target.source.node(model)
            if node is None:
                continue
            found: list[str] = []
            self.check_object(body, node, model, "", template, target.source, found, set())
            if not found:
                return
            attempts.append(found)
        for line in attempts[0] if attempts else [f"no request model found for {resource.type}"]:
            self.problem(where, line)

    def check_object(
        self,
        obj: dict[str, Any],
        node: Node,
        model: str,
        path: str,
        template: Template,
        source: VersionSource,
        found: list[str],
        seen: set[str],
    ) -> None:
        for raw_key, value in obj.items():
            key = key_name(raw_key)
            here = f"{path}.{key}" if path else key
            child = node.children.get(key)
            self.result.properties += 1
            if child is None:
                by_case = {k.lower(): k for k in node.children}
                if key.lower() in by_case:
                    found.append(
                        f"{here}: the REST name is {by_case[key.lower()]!r} "
                        f"({model}, {source.version})"
                    )
                    continue
                hint = difflib.get_close_matches(key, list(node.children), n=1, cutoff=0.7)
                found.append(
                    f"{here}: no such property in {model} at {source.version} ({source.package})"
                    + (f"; did you mean {hint[0]!r}?" if hint else "")
                )
                continue
            if isinstance(child, Node):
                self.check_value(value, ("node", child, model), here, template, source, found, seen)
                continue
            if child.readonly:
                found.append(f"{here}: read-only in {model} at {source.version}")
                continue
            self.check_value(
                value, self.expected(child.type, source, model), here, template, source, found, seen
            )

    def expected(self, type_: str, source: VersionSource, model: str) -> tuple[Any, ...]:
        if type_.startswith("[") and type_.endswith("]"):
            return ("list", type_[1:-1], model)
        if type_.startswith("{") and type_.endswith("}"):
            return ("map", type_[1:-1], model)
        if type_ in SCALARS:
            return ("scalar", type_, model)
        node = source.node(type_)
        if node is not None:
            return ("node", node, type_)
        return ("any", type_, model)

    def check_value(
        self,
        value: Any,
        expected: tuple[Any, ...],
        path: str,
        template: Template,
        source: VersionSource,
        found: list[str],
        seen: set[str],
    ) -> None:
        kind = expected[0]
        if kind == "any":
            return
        if isinstance(value, str):
            var = template.variable(value)
            if var is not None and value not in seen:
                self.check_value(var, expected, path, template, source, found, seen | {value})
            return
        op = operator(value)
        if op is not None:
            name, operands = op
            if name in ACCESSORS:
                return
            branches = (
                [operands.get("true_value"), operands.get("false_value")]
                if name == "conditional"
                else [o for o in operands.values() if isinstance(o, (dict, list, str))]
            )
            for branch in branches:
                self.check_value(branch, expected, path, template, source, found, seen)
            return
        fn = function(value)
        if fn is not None:
            if fn[0] in PASS_THROUGH_FUNCTIONS:
                for arg in fn[1].values():
                    self.check_value(arg, expected, path, template, source, found, seen)
            return
        is_loop, element = loop_element(value)
        if is_loop or isinstance(value, list):
            if kind != "list":
                found.append(f"{path}: an array where {self.describe(expected)} is expected")
                return
            inner = self.expected(expected[1], source, expected[2])
            for item in [element] if is_loop else value:
                self.check_value(item, inner, f"{path}[]", template, source, found, seen)
            return
        if isinstance(value, dict):
            if kind == "node":
                self.check_object(
                    value, expected[1], expected[2], path, template, source, found, seen
                )
            elif kind == "map":
                inner = self.expected(expected[1], source, expected[2])
                for key, item in value.items():
                    self.check_value(
                        item, inner, f"{path}.{key_name(key)}", template, source, found, seen
                    )
            else:
                found.append(f"{path}: an object where {self.describe(expected)} is expected")
            return
        if value is None:
            return
        if kind != "scalar":
            found.append(f"{path}: {value!r} where {self.describe(expected)} is expected")
        elif isinstance(value, bool):
            if expected[1] != "bool":
                found.append(f"{path}: {value!r} where a {expected[1]} is expected")
        elif isinstance(value, (int, float)) and expected[1] not in NUMBERS:
            found.append(f"{path}: {value!r} where a {expected[1]} is expected")

    @staticmethod
    def describe(expected: tuple[Any, ...]) -> str:
        kind = expected[0]
        if kind == "list":
            return f"an array of {expected[1]}"
        if kind == "map":
            return f"a map of {expected[1]}"
        if kind == "node":
            return f"an object ({expected[2]})"
        return f"a {expected[1]}"

    # -- reads: symbol.properties.x, module.outputs.x, module parameters

    def check_reads(self, template: Template, by_path: dict[Path, Template]) -> None:
        for chain in accessor_chains(template.doc):
            head, rest = chain[0], chain[1:]
            if head in template.resources:
                self.result.reads += 1
                self.check_read(template, template.resources[head], rest)
            elif head in template.modules and rest:
                self.result.reads += 1
                module = template.modules[head]
                target = by_path.get((template.path.parent / module.path).resolve())
                if target is None:
                    continue
                if rest[0] != "outputs" or len(rest) < 2:
                    if rest[0] not in {"name", "outputs"}:
                        self.problem(
                            f"{template.rel}: module {head}",
                            f"{'.'.join(chain)}: a module has only name and outputs",
                        )
                elif rest[1] not in target.outputs:
                    self.problem(
                        f"{template.rel}: module {head}",
                        f"{'.'.join(chain)}: {module.path} has no output {rest[1]!r} "
                        f"(it has {', '.join(sorted(target.outputs)) or 'none'})",
                    )

    def check_read(self, template: Template, resource: Resource, path: list[str]) -> None:
        if not path or path[0] in SYMBOL_KEYS:
            return
        where = f"{template.rel}: {resource.label}"
        target = self.target_quiet(resource)
        if target is None:
            return
        models = sorted(
            {m for op in target.operations if op.method == "GET" for m in op.response_models}
        )
        for model in models:
            if self.readable(target.source, model, path):
                return
        if models:
            self.problem(
                where,
                f"{resource.symbol}.{'.'.join(path)}: not in the response ({', '.join(models)}) "
                f"at {resource.api_version} ({target.source.package})",
            )

    def target_quiet(self, resource: Resource) -> Target | None:
        """The operations of the resource's type and version, or None when there are none."""
        provider, _, type_path = resource.type.partition("/")
        types = tuple(type_path.split("/"))
        for package in PROVIDER_PACKAGES.get(provider.lower(), ()):
            source = self.sources.source(package, resource.api_version)
            ops = source.operations(provider, types) if source is not None else []
            if source is not None and ops:
                return Target(source, ops)
        return None

    @staticmethod
    def readable(source: VersionSource, model: str, path: list[str]) -> bool:
        node = source.node(model)
        for i, key in enumerate(path):
            if node is None:
                return False
            child = node.children.get(key)
            if child is None:
                by_case = {k.lower(): v for k, v in node.children.items()}
                child = by_case.get(key.lower())
            if child is None:
                return False
            if isinstance(child, Node):
                node = child
                continue
            if i == len(path) - 1 or child.type == "object" or child.type.startswith("{"):
                return True
            node = source.node(child.type)
        return True

    def check_modules(self, template: Template, by_path: dict[Path, Template]) -> None:
        for module in template.modules.values():
            target = by_path.get((template.path.parent / module.path).resolve())
            where = f"{template.rel}: module {module.symbol}"
            if target is None:
                if not (template.path.parent / module.path).is_file():
                    self.problem(where, f"{module.path} does not exist")
                continue  # a file that does not parse is reported by the syntax check
            params = module.body.get("params") or {}
            declared = target.parameters
            for raw in params if isinstance(params, dict) else {}:
                key = key_name(raw)
                if key not in declared:
                    hint = difflib.get_close_matches(key, list(declared), n=1, cutoff=0.7)
                    self.problem(
                        where,
                        f"params.{key}: {module.path} declares no such parameter"
                        + (f" (did you mean {hint[0]!r}?)" if hint else ""),
                    )
            if isinstance(params, dict):
                given = {key_name(k) for k in params}
                for name, spec in declared.items():
                    if "default" not in spec and name not in given:
                        self.problem(where, f"params.{name}: required by {module.path}, not given")

    def problem(self, where: str, message: str) -> None:
        self.result.problems.append(f"{where}: {message}")


def check(templates: Iterable[Template], sources: Sources | None = None) -> Result:
    """Check every template; SdkMissing when an SDK that PROVIDER_PACKAGES names is absent."""
    templates = list(templates)
    sources = sources or Sources()
    result = Result()
    checker = Checker(sources, result)
    by_path = {t.path.resolve(): t for t in templates}
    for template in templates:
        for resource in template.resources.values():
            checker.check_resource(template, resource)
        checker.check_reads(template, by_path)
        checker.check_modules(template, by_path)
    result.sources = sorted(set(sources.read))
    return result
