"""Reading the parts of a SCIM request: its JSON body, search parameters and projection."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from scim_core.config import Settings
from scim_core.errors import InvalidSyntax, InvalidValue, PayloadTooLarge, UnsupportedMediaType
from scim_core.filter import Expr, check_filter, parse_filter
from scim_core.http import Request
from scim_core.json_keys import get_ci
from scim_core.projection import Projection, parse_names
from scim_core.query import SearchParams
from scim_core.schema import Registry, ResourceType

SEARCH_NAMES = ("filter", "startIndex", "count", "sortBy", "sortOrder", "cursor",
                "attributes", "excludedAttributes")
_INTEGER = re.compile(r"-?[0-9]{1,11}")
# NUL and lone surrogates can only enter a JSON text as \u escapes; look closer only then.
_SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# A SCIM resource is a few levels deep, a PATCH body a few more (PATCH values: 32 levels).
MAX_BODY_DEPTH = 40


def json_body(request: Request, max_bytes: int) -> Any:
    """The request body as JSON, refusing what is too large, not JSON or not storable."""
    if len(request.body) > max_bytes:
        raise PayloadTooLarge(f"The request body is larger than {max_bytes} bytes.")
    content_type = (request.header("Content-Type") or "").split(";")[0].strip().lower()
    if content_type and "json" not in content_type and content_type != "text/plain":
        raise UnsupportedMediaType("Send the body as application/scim+json.")
    if not request.body.strip():
        raise InvalidSyntax("The request body is empty; a JSON object is required.")
    try:
        text = request.body.decode("utf-8-sig")
        value = json.loads(text, parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise InvalidSyntax("The request body is not valid UTF-8.") from exc
    except RecursionError as exc:
        raise InvalidSyntax("The request body is nested too deeply.") from exc
    except ValueError as exc:
        raise InvalidSyntax(f"The request body is not valid JSON: {str(exc)[:120]}") from exc
    _check_storable(value, strings=_SUSPECT_ESCAPE.search(text) is not None)
    return value


def query_search(request: Request) -> dict[str, Any]:
    """The search parameters of a GET on a collection."""
    return {name: request.param(name) for name in SEARCH_NAMES}


def body_search(body: Any) -> dict[str, Any]:
    """The search parameters of a POST /.search SearchRequest."""
    if not isinstance(body, Mapping):
        raise InvalidSyntax("A SearchRequest must be a JSON object.")
    return {name: get_ci(body, name) for name in SEARCH_NAMES}


def search_filter(raw: Mapping[str, Any]) -> Expr | None:
    """The parsed ``filter`` (None when there is none)."""
    text = raw["filter"]
    if text is not None and not isinstance(text, str):
        raise InvalidValue("'filter' must be a string.")
    return parse_filter(text) if text and text.strip() else None


def search_params(registry: Registry, rt: ResourceType, raw: Mapping[str, Any],
                  expr: Expr | None, settings: Settings) -> SearchParams:
    """The search parameters as they apply to ``rt`` (the filter checked against it)."""
    if expr is not None:
        check_filter(expr, registry, rt)
    sort_by = raw["sortBy"]
    if sort_by is not None and not isinstance(sort_by, str):
        raise InvalidValue("'sortBy' must be an attribute name.")
    if sort_by:
        try:
            registry.resolve(rt, sort_by)
        except ValueError as exc:
            raise InvalidValue("'sortBy' must be an attribute name.") from exc
    order = raw["sortOrder"]
    if order is not None and (not isinstance(order, str)
                              or order.lower() not in ("ascending", "descending")):
        raise InvalidValue("'sortOrder' must be 'ascending' or 'descending'.")
    start = max(1, _integer(raw["startIndex"], "startIndex", 1))
    count = _integer(raw["count"], "count", settings.default_page_size)
    count = min(max(0, count), settings.max_results)
    cursor = raw["cursor"]
    if cursor is not None and not isinstance(cursor, str):
        raise InvalidValue("'cursor' must be a string.")
    if cursor is not None and raw["startIndex"] is not None:
        raise InvalidValue("Use either 'cursor' or 'startIndex', not both.")
    return SearchParams(expr, start, count, sort_by or None,
                        bool(order) and str(order).lower() == "descending", cursor)


def projection(registry: Registry, rt: ResourceType, attributes: Any,
               excluded: Any) -> Projection:
    """The ``attributes`` / ``excludedAttributes`` of a request, resolved for ``rt``."""
    return Projection.parse(registry, rt, parse_names(attributes, "attributes"),
                            parse_names(excluded, "excludedAttributes"))


def request_projection(registry: Registry, rt: ResourceType, request: Request) -> Projection:
    """The projection a request's query asks for."""
    return projection(registry, rt, request.param("attributes"),
                      request.param("excludedAttributes"))


def _integer(raw: Any, name: str, default: int) -> int:
    if raw is None or raw == "":
        return default
    if isinstance(raw, bool):
        raise InvalidValue(f"'{name}' must be an integer.")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str):
        text = raw.strip()
        if _INTEGER.fullmatch(text):  # ASCII only: "¹" and "--5" pass str.isdigit()
            return int(text)
    raise InvalidValue(f"'{name}' must be an integer.")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _check_storable(value: Any, *, strings: bool) -> None:
    """Refuse what would poison the store once accepted: nesting deeper than
    ``MAX_BODY_DEPTH`` (later copies and filter evaluation would overflow the stack on it),
    and, when ``strings``, a key or string holding NUL or a lone surrogate (a lone surrogate
    cannot be encoded as UTF-8, so every read of the resource would fail; NUL is refused
    because storage keys and the applications reading the table cannot be trusted with it)."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            if strings and _UNSTORABLE.search(item):
                raise InvalidValue("The request body holds a string with a NUL character or "
                                   "an unpaired UTF-16 surrogate (\\u0000, \\ud800-\\udfff).")
        elif isinstance(item, dict | list):
            if depth > MAX_BODY_DEPTH:
                raise InvalidSyntax(
                    f"The request body is nested more than {MAX_BODY_DEPTH} levels deep.")
            if isinstance(item, dict):
                pending.extend((key, depth) for key in item)
                pending.extend((child, depth + 1) for child in item.values())
            else:
                pending.extend((child, depth + 1) for child in item)
