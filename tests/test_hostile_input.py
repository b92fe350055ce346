"""Hostile input: generated filters, PATCH bodies and resource bodies, huge, deep, invalid
and mistyped payloads never get a 5xx, always get a SCIM Error body when refused, never
change stored data when refused, and the limits that refuse them are announced.

Property tests run through the registered function (``memory_client``) and, for a subset,
over HTTP through the dev host (``http_client``); the curated payloads run on both stores.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scim_core.config import Settings
from scim_core.filter.parser import DEFAULT_MAX_LENGTH as MAX_FILTER_LENGTH
from scim_core.request_parts import MAX_BODY_DEPTH
from scim_core.store import MemoryStore
from scim_core.validation import MAX_STRING
from tests.conftest import make_api
from tests.reliability import assert_scim_error, count, snapshot, write_figures
from tests.support import (
    ENTERPRISE,
    GROUP_SCHEMA,
    PATCH_OP,
    USER_SCHEMA,
    FunctionClient,
    HttpClient,
    Result,
    use_api,
)

pytestmark = pytest.mark.timeout(120)

DEFAULTS = Settings()
SUITE = "hostile"
FAST = settings(max_examples=300, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])
OVER_HTTP = settings(FAST, max_examples=100)


@pytest.fixture(scope="module", autouse=True)
def _figures() -> Iterator[None]:
    yield
    write_figures(SUITE)


# -- generators -----------------------------------------------------------------------------

KNOWN_KEYS = [
    "schemas", "id", "meta", "externalId", "userName", "name", "givenName", "familyName",
    "formatted", "displayName", "nickName", "title", "active", "emails", "value", "type",
    "primary", "phoneNumbers", "addresses", "members", "display", "$ref", "groups", "roles",
    "password", "manager", "preferredLanguage", "locale", "timezone", ENTERPRISE,
    f"{ENTERPRISE}:employeeNumber", "urn:ietf:params:scim:schemas:extension:Custom:2.0:User",
    "urn:", "USERNAME", "Operations",
]
keys = st.one_of(st.sampled_from(KNOWN_KEYS), st.text(max_size=12))
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40),
    st.sampled_from(["True", "False", "", " ", "2026-01-31T12:00:00Z", "x" * 300]),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(keys, children, max_size=4)),
    max_leaves=16,
)

ATTRIBUTE_PATHS = [
    "userName", "name", "name.givenName", "emails", "emails.value", 'emails[type eq "work"].value',
    "active", "meta.lastModified", "meta.created", "id", "externalId", "displayName", "members",
    "members.value", "groups", "title", "x", "name.x.y", f"{ENTERPRISE}:employeeNumber",
    f"{ENTERPRISE}:manager", f"{ENTERPRISE}:manager.value", "urn:bogus:x", "Members",
    "USERNAME", "emails.primary", "phoneNumbers.type", "addresses.postalCode",
]
attribute_paths = st.one_of(
    st.sampled_from(ATTRIBUTE_PATHS),
    st.from_regex(r"[A-Za-z$][A-Za-z0-9_$.\-:]{0,20}", fullmatch=True),
)
compare_ops = st.sampled_from(["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "EQ",
                               "Co", "xx", "=="])
filter_values = st.one_of(
    st.text(max_size=12).map(json.dumps), st.integers().map(str),
    st.sampled_from(["true", "false", "null", "True", '"', '"\\', "1e999", "-0", '"\\u00e9"',
                     '"\\ud83d\\ude00"', "bare-token"]),
    st.floats(allow_nan=False, allow_infinity=False).map(str), st.text(max_size=12),
)
comparisons = st.one_of(
    st.builds(lambda a, o, v: f"{a} {o} {v}", attribute_paths, compare_ops, filter_values),
    attribute_paths.map(lambda a: f"{a} pr"),
)
grammar_filters = st.recursive(
    comparisons,
    lambda inner: st.one_of(
        st.builds(lambda left, k, right: f"{left} {k} {right}", inner,
                  st.sampled_from(["and", "or", "AND", "Or"]), inner),
        inner.map(lambda x: f"not ({x})"),
        inner.map(lambda x: f"not({x})"),
        inner.map(lambda x: f"({x})"),
        st.builds(lambda a, x: f"{a}[{x}]", attribute_paths, inner),
    ),
    max_leaves=8,
)


def _mutate(text: str, position: int, insert: str, cut: int) -> str:
    at = position % (len(text) + 1)
    return text[:at] + insert + text[at + cut:]


filters = st.one_of(
    grammar_filters,
    st.builds(_mutate, grammar_filters, st.integers(0, 200),
              st.sampled_from(["(", ")", "[", "]", '"', " ", "\\", "not ", " and", "\x00", "\t",
                               "\u00e9", "\U0001f600", "."]), st.integers(0, 3)),
    st.text(max_size=60),
)

PATCH_PATHS = [
    *ATTRIBUTE_PATHS, 'members[value eq "nope"]', 'emails[type eq "work"]',
    'emails[value co "@"].display',
    f"{ENTERPRISE}:manager", "", " ", "[", "emails[", 'emails[type eq "w"]].value',
    "urn:ietf:params:scim:schemas:core:2.0:User:userName",
]
patch_paths = st.one_of(st.sampled_from(PATCH_PATHS), st.text(max_size=30), json_values)
operations = st.one_of(
    st.fixed_dictionaries(
        {"op": st.one_of(st.sampled_from(["add", "replace", "remove", "Add", "REPLACE",
                                          "delete", "", "move"]), json_values)},
        optional={"path": patch_paths, "value": json_values},
    ),
    json_values,
)
patch_bodies = st.one_of(
    st.fixed_dictionaries({"Operations": st.lists(operations, max_size=6)},
                          optional={"schemas": st.just([PATCH_OP])}),
    st.fixed_dictionaries({"operations": json_values, "schemas": json_values}),
    json_values,
)
user_bodies = st.one_of(
    st.fixed_dictionaries(
        {"userName": st.one_of(st.text(min_size=1, max_size=30), json_values)},
        optional={"schemas": st.one_of(st.just([USER_SCHEMA]), json_values),
                  "name": json_values, "emails": json_values, "active": json_values,
                  "externalId": json_values, ENTERPRISE: json_values, "id": json_values,
                  "meta": json_values, "password": json_values, "groups": json_values},
    ).flatmap(lambda base: st.dictionaries(keys, json_values, max_size=3).map(
        lambda extra: {**extra, **base})),
    json_values,
)
group_bodies = st.one_of(
    st.fixed_dictionaries(
        {"displayName": st.one_of(st.text(min_size=1, max_size=30), json_values)},
        optional={"schemas": st.just([GROUP_SCHEMA]), "members": json_values,
                  "externalId": json_values},
    ),
    json_values,
)


# -- helpers --------------------------------------------------------------------------------


class Seeded:
    """A client over a store holding a few users and a group with members."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.users = [client.create_user(f"seed{i}@example.org", externalId=f"ext{i}",
                                         emails=[{"type": "work",
                                                  "value": f"seed{i}@example.org"}])
                      for i in range(3)]
        self.group = client.create_group("Seed Group", members=[
            {"value": u["id"]} for u in self.users[:2]])
        self.user_id = self.users[0]["id"]
        self.group_id = self.group["id"]


def refused_untouched(client: Any, send: Any, *, allowed: tuple[int, ...] | None = None
                      ) -> Result:
    """Send one request; it must not be a 5xx; when refused it must carry a SCIM Error and
    leave every stored user and group exactly as it was."""
    before = snapshot(client)
    result: Result = send()
    count(f"{SUITE}.requests", 3)
    assert_scim_error(result, allowed=allowed)
    if result.status >= 400:
        count(f"{SUITE}.refused")
        assert snapshot(client) == before, "a refused request changed stored data"
        count(f"{SUITE}.snapshots_compared")
    return result


@pytest.fixture
def seeded(memory_client: FunctionClient) -> Seeded:
    return Seeded(memory_client)


@pytest.fixture
def seeded_http(http_client: HttpClient) -> Seeded:
    return Seeded(http_client)


# -- generated input through the registered function ---------------------------------------


@FAST
@given(text=filters, endpoint=st.sampled_from(["/Users", "/Groups"]))
def test_generated_filters_never_fail_the_server(seeded: Seeded, text: str,
                                                 endpoint: str) -> None:
    """Any filter text, by query or .search, gets 200 or a 400 SCIM error, never a 5xx."""
    count(f"{SUITE}.inputs.filters")
    client = seeded.client
    refused_untouched(client, lambda: client.get(endpoint, params={"filter": text}),
                      allowed=(200, 400))
    refused_untouched(client, lambda: client.post(f"{endpoint}/.search", {"filter": text}),
                      allowed=(200, 400))


@FAST
@given(body=patch_bodies, target=st.sampled_from(["user", "group"]))
def test_generated_patch_bodies_never_fail_the_server(seeded: Seeded, body: Any,
                                                      target: str) -> None:
    """Any PATCH body gets 200/204 or a 4xx SCIM error that left the store untouched."""
    count(f"{SUITE}.inputs.patch_bodies")
    client = seeded.client
    path = f"/Users/{seeded.user_id}" if target == "user" else f"/Groups/{seeded.group_id}"
    refused_untouched(client, lambda: client.patch(path, body))


@FAST
@given(body=user_bodies, method=st.sampled_from(["POST", "PUT"]))
def test_generated_user_bodies_never_fail_the_server(seeded: Seeded, body: Any,
                                                     method: str) -> None:
    """Any POST/PUT user body gets 200/201 or a 4xx SCIM error that changed nothing."""
    count(f"{SUITE}.inputs.user_bodies")
    client = seeded.client
    path = "/Users" if method == "POST" else f"/Users/{seeded.users[2]['id']}"
    refused_untouched(client, lambda: client.request(method, path, body))


@FAST
@given(body=group_bodies, method=st.sampled_from(["POST", "PUT"]))
def test_generated_group_bodies_never_fail_the_server(seeded: Seeded, body: Any,
                                                      method: str) -> None:
    """Any POST/PUT group body gets 200/201 or a 4xx SCIM error that changed nothing."""
    count(f"{SUITE}.inputs.group_bodies")
    client = seeded.client
    path = "/Groups" if method == "POST" else f"/Groups/{seeded.group_id}"
    refused_untouched(client, lambda: client.request(method, path, body))


@FAST
@given(params=st.dictionaries(
    st.sampled_from(["filter", "startIndex", "count", "sortBy", "sortOrder", "cursor",
                     "attributes", "excludedAttributes", "StartIndex", "x"]),
    st.one_of(st.text(max_size=20), st.integers().map(str),
              st.sampled_from(["", "-1", "0", "99999999999", "1e3", "\u00b9", "--5", "\u0661",
                               "+3", " 7 ", "0x10", "userName", "members",
                               "ascending", "DESCENDING", "emails.value", "id,meta"])),
    max_size=5), endpoint=st.sampled_from(["/Users", "/Groups", "/Users/.search"]))
def test_generated_query_parameters_never_fail_the_server(seeded: Seeded,
                                                          params: dict[str, str],
                                                          endpoint: str) -> None:
    """Any mix of list parameters, in the query or a SearchRequest, gets 200 or a 4xx."""
    count(f"{SUITE}.inputs.query_parameters")
    client = seeded.client
    if endpoint.endswith(".search"):
        refused_untouched(client, lambda: client.post(endpoint, params))
    else:
        refused_untouched(client, lambda: client.get(endpoint, params=params))


# -- generated input over HTTP through the dev host ----------------------------------------


@OVER_HTTP
@given(raw=st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.builds(lambda prefix, junk: prefix + junk,
              st.sampled_from([b'{"userName":"', b'{"Operations":[', b"\xef\xbb\xbf{",
                               b'{"userName":"a\\u', b"[" * 50]),
              st.binary(max_size=40)),
), method=st.sampled_from(["POST", "PUT", "PATCH"]))
def test_generated_raw_bodies_over_http_never_fail_the_server(seeded_http: Seeded, raw: bytes,
                                                              method: str) -> None:
    """Any bytes as a POST/PUT/PATCH body over HTTP get a non-5xx answer (a SCIM error when
    refused) and a refusal leaves the store untouched."""
    count(f"{SUITE}.inputs.raw_bodies_http")
    client = seeded_http.client
    path = "/Users" if method == "POST" else f"/Users/{seeded_http.user_id}"
    refused_untouched(client, lambda: client.request(method, path, raw=raw))


@OVER_HTTP
@given(text=filters)
def test_generated_filters_over_http_never_fail_the_server(seeded_http: Seeded,
                                                           text: str) -> None:
    """Any filter text sent over HTTP in the query string gets 200 or a 400 SCIM error."""
    count(f"{SUITE}.inputs.filters_http")
    client = seeded_http.client
    refused_untouched(client, lambda: client.get("/Users", params={"filter": text}),
                      allowed=(200, 400))


@OVER_HTTP
@given(body=patch_bodies)
def test_generated_patch_bodies_over_http_never_fail_the_server(seeded_http: Seeded,
                                                                body: Any) -> None:
    """Any PATCH body sent over HTTP gets 2xx or a 4xx SCIM error that changed nothing."""
    count(f"{SUITE}.inputs.patch_bodies_http")
    client = seeded_http.client
    refused_untouched(client, lambda: client.patch(f"/Groups/{seeded_http.group_id}", body))


# -- the named hostile payloads -----------------------------------------------------------


def test_ten_thousand_operation_patch_is_refused_untouched(seeded: Seeded) -> None:
    """A 10,000-operation PATCH gets 400 tooMany and changes nothing; the limit is
    SCIM_MAX_OPERATIONS (default 1000), stated in the error."""
    client = seeded.client
    ops = [{"op": "replace", "path": "displayName", "value": f"n{i}"} for i in range(10_000)]
    body = {"schemas": [PATCH_OP], "Operations": ops}
    assert len(json.dumps(body)) < DEFAULTS.max_body_bytes  # the operation limit bites first
    result = refused_untouched(client, lambda: client.patch(f"/Users/{seeded.user_id}", body),
                               allowed=(400,))
    assert result.json["scimType"] == "tooMany"
    assert str(DEFAULTS.max_operations) in result.json["detail"]
    limit = ops[:DEFAULTS.max_operations]
    accepted = client.patch(f"/Users/{seeded.user_id}", {"schemas": [PATCH_OP],
                                                         "Operations": limit})
    assert accepted.status == 200
    assert accepted.json["displayName"] == f"n{DEFAULTS.max_operations - 1}"


def test_ten_megabyte_body_over_http_gets_413(seeded_http: Seeded) -> None:
    """A 10 MB body over HTTP gets 413 with a SCIM Error on every writing route, changes
    nothing, and the connection's next request is served; the limit is SCIM_MAX_BODY_BYTES
    (default 1 MiB), announced as bulk.maxPayloadSize."""
    client = seeded_http.client
    big = b'{"userName":"big","x":"' + b"a" * (10 * 1024 * 1024) + b'"}'
    routes = [("POST", "/Users"), ("PUT", f"/Users/{seeded_http.user_id}"),
              ("PATCH", f"/Groups/{seeded_http.group_id}"), ("POST", "/Groups/.search")]
    for method, path in routes:
        result = refused_untouched(client, lambda m=method, p=path: client.request(m, p, raw=big),
                                   allowed=(413,))
        assert str(DEFAULTS.max_body_bytes) in result.json["detail"]
        count(f"{SUITE}.bytes_refused", len(big))
    announced = client.get("/ServiceProviderConfig").json["bulk"]["maxPayloadSize"]
    assert announced == DEFAULTS.max_body_bytes


@pytest.mark.parametrize("raw", [
    b"[" * 100_000,
    b'{"userName":"deep","x":' + b"[" * 100_000,
    b'{"userName":"deep","x":' + b'{"a":' * 50_000 + b"1" + b"}" * 50_000 + b"}",
    b'{"Operations":[{"op":"add","path":"x","value":' + b"[" * 100_000 + b"]" * 100_000 + b"}]}",
], ids=["brackets", "unclosed-in-user", "objects-in-user", "brackets-in-patch"])
@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_deep_nesting_gets_400(seeded: Seeded, raw: bytes, method: str) -> None:
    """100,000 levels of nesting get 400 invalidSyntax (no stack overflow, nothing stored)."""
    client = seeded.client
    path = "/Users" if method == "POST" else f"/Users/{seeded.user_id}"
    result = refused_untouched(client, lambda: client.request(method, path, raw=raw),
                               allowed=(400,))
    assert result.json["scimType"] == "invalidSyntax"


def test_nesting_beyond_the_body_depth_limit_is_refused_before_it_is_stored(
        seeded: Seeded) -> None:
    """A body nested just past MAX_BODY_DEPTH is refused; one at the limit is stored and
    the user stays patchable and filterable (deep values cannot poison later reads)."""
    client = seeded.client

    def nested(depth: int) -> Any:
        value: Any = "leaf"
        for _ in range(depth):
            value = [value]
        return value

    too_deep = {"userName": "deep1", "x": nested(MAX_BODY_DEPTH)}
    refused_untouched(client, lambda: client.post("/Users", too_deep), allowed=(400,))
    at_limit = client.create_user("deep2", x=nested(MAX_BODY_DEPTH - 2))
    patched = client.patch_ops(f"/Users/{at_limit['id']}",
                               {"op": "replace", "path": "displayName", "value": "ok"})
    assert patched.status == 200
    listed = client.get("/Users", params={"filter": 'x pr and displayName eq "ok"'})
    assert listed.status == 200 and listed.json["totalResults"] == 1


@pytest.mark.parametrize("raw", [
    b'{"userName":"\xff\xfe"}', b'{"userName":"a\xc3"}', b"\xed\xa0\x80", b"\x80",
    b'{"userName":"ok","x":"\xf4\x90\x80\x80"}',
], ids=["ff-fe", "truncated", "encoded-surrogate", "continuation", "beyond-unicode"])
def test_invalid_utf8_gets_400(seeded: Seeded, raw: bytes) -> None:
    """A body that is not valid UTF-8 gets 400 invalidSyntax and stores nothing."""
    result = refused_untouched(seeded.client, lambda: seeded.client.post("/Users", raw=raw),
                               allowed=(400,))
    assert result.json["scimType"] == "invalidSyntax"


def test_invalid_utf8_over_http_gets_400(seeded_http: Seeded) -> None:
    """Over HTTP too, invalid UTF-8 in a body or a percent-encoded query gets a 4xx."""
    client = seeded_http.client
    refused_untouched(client, lambda: client.post("/Users", raw=b'{"userName":"\xff"}'),
                      allowed=(400,))
    connection = client.connection
    for target in ("/scim/v2/Users?filter=userName%20eq%20%22%FF%FE%22",
                   "/scim/v2/Users?filter=%ED%A0%80", "/scim/v2/Users/%FF%00"):
        before = snapshot(client)
        connection.request("GET", target, headers={"Authorization": f"Bearer {client.token}"})
        response = connection.getresponse()
        result = Result(response.status, dict(response.getheaders()), response.read())
        assert_scim_error(result)
        assert snapshot(client) == before


@pytest.mark.parametrize("body", [
    {"userName": "a\u0000b"}, {"userName": "ok", "displayName": "\u0000"},
    {"userName": "ok", "x-custom": ["\u0000"]}, {"userName": "ok", "k\u0000": 1},
    {"userName": "ok", "name": {"givenName": "\u0000"}},
    {"userName": "\ud800"}, {"userName": "ok", "emails": [{"value": "\udfff@x"}]},
    {"userName": "ok", "\udbff": "lone surrogate key"},
], ids=["username", "displayname", "custom", "key", "nested", "surrogate", "surrogate-email",
        "surrogate-key"])
def test_nul_and_lone_surrogates_in_strings_are_refused(seeded: Seeded,
                                                        body: dict[str, Any]) -> None:
    """NUL and unpaired surrogates (\\u escapes) in any key or string get 400 and are never
    stored; a stored lone surrogate would make every later listing fail."""
    client = seeded.client
    raw = json.dumps(body).encode()  # ensure_ascii: the characters travel as \\u escapes
    refused_untouched(client, lambda: client.post("/Users", raw=raw), allowed=(400,))
    patch = {"Operations": [{"op": "add", "value": body}]}
    refused_untouched(client, lambda: client.patch(f"/Users/{seeded.user_id}",
                                                   raw=json.dumps(patch).encode()),
                      allowed=(400,))
    assert client.get("/Users").status == 200


@pytest.mark.parametrize("text", [
    'userName eq "a\u0000"', "userName\u0000 eq 1", "\u0000", 'emails[value eq "\u0000"]',
])
def test_nul_in_filters_and_paths_is_refused(seeded: Seeded, text: str) -> None:
    """A NUL character in a filter or a PATCH path gets a 4xx SCIM error."""
    client = seeded.client
    result = refused_untouched(client, lambda: client.get("/Users", params={"filter": text}))
    assert 400 <= result.status < 500
    result = refused_untouched(client, lambda: client.patch_ops(
        f"/Users/{seeded.user_id}", {"op": "replace", "path": text, "value": "x"}))
    assert 400 <= result.status < 500


@pytest.mark.parametrize("value", ["\\u0000", "a\\u0000b", "\\ud800", "\\udfff\\ud800"])
@pytest.mark.parametrize("attribute", ["userName", "externalId", "emails.value", "title"])
def test_escaped_nul_and_surrogates_in_filter_values_find_nothing(
        seeded: Seeded, attribute: str, value: str) -> None:
    """A filter value spelling NUL or a lone surrogate as a JSON escape either gets 400 or
    matches nothing (no such value can be stored); never a 5xx."""
    client = seeded.client
    text = f'{attribute} eq "{value}"'
    result = refused_untouched(client, lambda: client.get("/Users", params={"filter": text}),
                               allowed=(200, 400))
    if result.status == 200:
        assert result.json["totalResults"] == 0


@pytest.mark.parametrize("body", [
    {"userName": 5}, {"userName": ["a"]}, {"userName": {"value": "a"}}, {"userName": True},
    {"userName": "ok", "displayName": 1.5}, {"userName": "ok", "active": "maybe"},
    {"userName": "ok", "active": 1}, {"userName": "ok", "emails": [{"value": 5}]},
    {"userName": "ok", "emails": "a@b"}, {"userName": "ok", "name": "plain"},
    {"userName": "ok", "name": {"givenName": ["x"]}}, {"userName": "ok", ENTERPRISE: "x"},
    {"userName": "ok", ENTERPRISE: {"employeeNumber": 42}}, {"userName": ""},
    {"userName": "   "}, {"userName": None}, {"emails": [{"value": "x@y"}]}, [], "user", 7,
], ids=lambda b: json.dumps(b)[:40])
def test_wrong_types_get_400(seeded: Seeded, body: Any) -> None:
    """Numbers, lists, objects or Booleans where strings belong (and the reverse) get 400."""
    refused_untouched(seeded.client, lambda: seeded.client.post("/Users", body),
                      allowed=(400,))


def test_huge_strings_are_refused_or_stored_whole(seeded: Seeded) -> None:
    """A schema string longer than the per-string limit gets 400; a body just under the
    size limit is stored whole or refused with 4xx, never truncated or a 5xx."""
    client = seeded.client
    long_name = "u" * (MAX_STRING + 1)
    refused_untouched(client, lambda: client.post("/Users", {"userName": long_name}),
                      allowed=(400,))
    refused_untouched(client, lambda: client.patch_ops(
        f"/Users/{seeded.user_id}", {"op": "replace", "path": "displayName",
                                     "value": long_name}), allowed=(400,))
    blob = "b" * (DEFAULTS.max_body_bytes - 200)
    result = refused_untouched(client, lambda: client.post("/Users", {"userName": "blob",
                                                                      "x-blob": blob}))
    if result.status == 201:
        got = client.get(f"/Users/{result.json['id']}")
        assert got.json["x-blob"] == blob


def test_limits_are_announced_in_service_provider_config(memory_client: FunctionClient
                                                         ) -> None:
    """/ServiceProviderConfig announces bulk.maxPayloadSize, filter.maxResults and the page
    sizes, with the defaults from scim_core.config, and no attribute RFC 7643 §5 lacks."""
    document = memory_client.get("/ServiceProviderConfig", token=None).json
    assert set(document) <= {"schemas", "documentationUri", "patch", "bulk", "filter",
                             "changePassword", "sort", "etag", "pagination",
                             "authenticationSchemes", "meta"}
    assert document["bulk"]["maxPayloadSize"] == DEFAULTS.max_body_bytes == 1_048_576
    assert document["filter"] == {"supported": True, "maxResults": DEFAULTS.max_results}
    assert document["pagination"]["maxPageSize"] == DEFAULTS.max_results
    assert document["pagination"]["defaultPageSize"] == DEFAULTS.default_page_size
    assert document["bulk"]["supported"] is False


def test_configured_limits_are_announced_and_enforced() -> None:
    """Lowered SCIM_MAX_BODY_BYTES / SCIM_MAX_OPERATIONS / SCIM_MAX_RESULTS are what
    /ServiceProviderConfig announces and what requests are held to, byte for byte."""
    use_api(make_api(MemoryStore(), max_body_bytes=2048, max_operations=3, max_results=4))
    client = FunctionClient()
    document = client.get("/ServiceProviderConfig").json
    assert (document["bulk"]["maxPayloadSize"], document["filter"]["maxResults"]) == (2048, 4)
    user = client.create_user("limits@example.org")
    body = json.dumps({"userName": "pad", "x": ""}, separators=(",", ":")).encode()
    at_limit = body.replace(b'"x":""', b'"x":"' + b"p" * (2048 - len(body)) + b'"')
    assert len(at_limit) == 2048
    assert client.post("/Users", raw=at_limit).status == 201
    over = at_limit.replace(b'"pad"', b'"pad2"')
    refused_untouched(client, lambda: client.post("/Users", raw=over), allowed=(413,))
    ops = [{"op": "replace", "path": "title", "value": "t"}] * 4
    refused_untouched(client, lambda: client.patch_ops(f"/Users/{user['id']}", *ops),
                      allowed=(400,))
    assert client.patch_ops(f"/Users/{user['id']}", *ops[:3]).status == 200
    for i in range(6):
        client.create_user(f"page{i}@example.org")
    page = client.get("/Users", params={"count": "1000"}).json
    assert page["itemsPerPage"] == 4 and page["totalResults"] == 8


def test_filter_length_limit_is_enforced(seeded: Seeded) -> None:
    """A filter longer than the parser's limit (4096 characters) gets 400 invalidFilter;
    one at the limit is evaluated."""
    client = seeded.client
    prefix = 'userName eq "'
    at_limit = prefix + "a" * (MAX_FILTER_LENGTH - len(prefix) - 1) + '"'
    assert len(at_limit) == MAX_FILTER_LENGTH
    assert client.get("/Users", params={"filter": at_limit}).status == 200
    over = at_limit[:-1] + 'a"'
    result = refused_untouched(client, lambda: client.get("/Users", params={"filter": over}),
                               allowed=(400,))
    assert result.json["scimType"] == "invalidFilter"


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/Bulk"), ("GET", "/Me"), ("GET", "/.search"), ("DELETE", "/Users"),
    ("PUT", "/Groups"), ("POST", "/Users/x/y"), ("GET", "/Users/.search"),
    ("POST", "/Schemas"), ("DELETE", "/ServiceProviderConfig"), ("GET", "/Users/%2e%2e"),
])
def test_unsupported_routes_get_scim_errors(seeded: Seeded, method: str, path: str) -> None:
    """Unsupported endpoints and methods get 404/405/501 SCIM errors, never a 5xx other
    than 501 Not Implemented."""
    result = refused_untouched(seeded.client,
                               lambda: seeded.client.request(method, path, {"x": 1}),
                               allowed=(404, 405, 501))
    assert result.status in (404, 405, 501)


@pytest.mark.parametrize(("headers", "status"), [
    ({"Content-Type": "text/xml"}, 415),
    ({"Content-Type": "application/x-www-form-urlencoded"}, 415),
    ({"Content-Type": "\u00e9/\u00e9"}, 415),
    ({"Accept": "text/html"}, 406),
    ({"If-Match": "\x00"}, 412),
    ({"If-Match": "W/\"" + "x" * 10_000 + "\""}, 412),
    ({"Accept": ";;;,,,"}, 200),
], ids=["xml", "form", "unicode-type", "accept-html", "nul-ifmatch", "huge-ifmatch",
        "junk-accept"])
def test_odd_headers_get_their_one_answer(seeded: Seeded, headers: dict[str, str],
                                          status: int) -> None:
    """A PATCH with a non-SCIM Content-Type gets 415, with an Accept that excludes JSON 406,
    with an If-Match naming no version 412 (each a SCIM error that changes nothing); an
    Accept that names no media type at all is ignored and the PATCH applies."""
    client = seeded.client
    result = refused_untouched(client, lambda: client.patch_ops(
        f"/Users/{seeded.user_id}", {"op": "replace", "path": "title", "value": "t"},
        headers=headers), allowed=(status,))
    title = client.get(f"/Users/{seeded.user_id}").json.get("title")
    assert title == ("t" if status == 200 else None), (result.status, title)


HOSTILE_USER_NAMES = [
    "a/b", "a\\b", "a#b", "a?b", "a%2Fb", "..", ".", "a\tb", "a\nb", "\u007f", "\u0085",
    "\u200b", "\ufeff", "\U0001f600", "\u00df", "SS", "\u0130", "i\u0307", "x" * 1100,
    "y" * 5000, "'", "\"", "a' or 1 eq 1", "PartitionKey", "$filter", "userName:x",
]


@pytest.mark.parametrize("user_name", HOSTILE_USER_NAMES,
                         ids=[repr(n)[:20] for n in HOSTILE_USER_NAMES])
def test_hostile_user_names_on_both_stores(client: Any, user_name: str) -> None:
    """Forbidden key characters, control characters, case-folding traps and long values as
    userNames are stored and found by filter, or refused with a 4xx, on either store; a
    second create of the same name (in any case) gets 409."""
    result = refused_untouched(client, lambda: client.post("/Users", {"userName": user_name}))
    count(f"{SUITE}.inputs.hostile_user_names")
    if result.status != 201:
        return
    user_id = result.json["id"]
    escaped = user_name.replace("\\", "\\\\").replace('"', '\\"')
    found = client.get("/Users", params={"filter": f'userName eq "{escaped}"'})
    assert found.status in (200, 400)
    if found.status == 200:
        assert [r["id"] for r in found.json["Resources"]] == [user_id]
    again = refused_untouched(client, lambda: client.post(
        "/Users", {"userName": user_name.upper()}))
    if user_name.upper().casefold() == user_name.casefold():
        assert again.status == 409, (user_name, again.status)
    assert client.get(f"/Users/{user_id}").json["userName"] == user_name
    assert client.delete(f"/Users/{user_id}").status == 204


def test_big_unknown_attribute_on_both_stores(client: Any) -> None:
    """A body just under maxPayloadSize, mostly one unknown attribute, is stored whole or
    refused with a 4xx SCIM error on either store, never a 5xx or a partial write."""
    blob = "z" * (DEFAULTS.max_body_bytes - 100)
    result = refused_untouched(client, lambda: client.post("/Users", {"userName": "blob",
                                                                      "x-blob": blob}))
    if result.status == 201:
        assert client.get(f"/Users/{result.json['id']}").json["x-blob"] == blob
    many = {f"x{i}": "v" * 2000 for i in range(400)}
    result = refused_untouched(client, lambda: client.post("/Users", {"userName": "wide",
                                                                      **many}))
    if result.status == 201:
        assert client.get(f"/Users/{result.json['id']}").json["x399"] == "v" * 2000


@settings(FAST, max_examples=30)
@given(user_name=st.text(min_size=1, max_size=300))
def test_generated_user_names_round_trip_on_both_stores(client: Any, user_name: str) -> None:
    """Any userName is either refused with a 4xx that stores nothing, or stored so that
    GET by id returns it exactly, ``userName eq`` finds exactly it, and a second create in
    another case gets 409; then it deletes cleanly."""
    count(f"{SUITE}.inputs.generated_user_names")
    result = refused_untouched(client, lambda: client.post("/Users", {"userName": user_name}))
    if result.status != 201:
        return
    user_id = result.json["id"]
    try:
        assert client.get(f"/Users/{user_id}").json["userName"] == user_name
        found = client.get("/Users", params={"filter": f"userName eq {json.dumps(user_name)}"})
        assert found.status == 200, found.body[:300]
        assert [r["id"] for r in found.json["Resources"]] == [user_id]
        twin = user_name.swapcase()
        if twin.casefold() == user_name.casefold():
            again = refused_untouched(client, lambda: client.post("/Users", {"userName": twin}))
            assert again.status == 409, (user_name, again.status)
    finally:
        assert client.delete(f"/Users/{user_id}").status == 204
