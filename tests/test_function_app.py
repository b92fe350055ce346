"""The walking skeleton through the registered Azure Function (real func.HttpRequest)."""

from __future__ import annotations

import azure.functions as func

import function_app
from scim_core import Settings, build_api
from tests.support import BASE, ERROR_SCHEMA, TOKEN, USER_SCHEMA, FunctionClient, use_api


def test_app_registers_anonymous_catch_all_triggers_for_both_tenant_urls() -> None:
    """function_app registers anonymous HTTP triggers on scim/v2/{*path} (the default
    tenant), tenants/{tenant}/scim/v2/{*path} and manage/v1/{*path}, each for every verb,
    and setup/{*path} (the setup page) for GET, HEAD and POST."""
    function_app.app.functions_bindings = None  # azure-functions 1.26 indexes an app once
    functions = [f for f in function_app.app.get_functions() if f.is_http_function()]
    function_app.app.functions_bindings = None
    assert [f.get_function_name() for f in functions] == ["scim", "tenant_scim", "manage",
                                                          "setup"]
    routes = []
    for function in functions:
        trigger = function.get_trigger()
        assert trigger is not None
        binding = trigger.get_dict_repr()
        routes.append(binding["route"])
        assert str(getattr(binding["authLevel"], "value", binding["authLevel"])) == "anonymous"
        methods = {str(getattr(m, "value", m)) for m in binding["methods"]}
        assert methods == ({"GET", "HEAD", "POST"} if binding["route"].startswith("setup/")
                           else {"GET", "POST", "PUT", "PATCH", "DELETE"})
    assert routes == ["scim/v2/{*path}", "tenants/{tenant}/scim/v2/{*path}",
                      "manage/v1/{*path}", "setup/{*path}"]


def test_service_provider_config_is_served_as_scim_json(memory_client: FunctionClient) -> None:
    """GET /ServiceProviderConfig answers 200 application/scim+json with PATCH supported."""
    result = memory_client.get("/ServiceProviderConfig")
    assert result.status == 200
    assert result.header("Content-Type").startswith("application/scim+json")
    assert result.json["patch"]["supported"] is True
    assert result.json["meta"]["location"] == f"{BASE}/ServiceProviderConfig"


def test_missing_token_gets_401_scim_error(memory_client: FunctionClient) -> None:
    """A protected request without a token gets 401, WWW-Authenticate and a SCIM error body."""
    result = memory_client.get("/Users", token=None)
    assert result.status == 401
    assert result.header("WWW-Authenticate").startswith("Bearer")
    assert result.json["schemas"] == [ERROR_SCHEMA]
    assert result.json["status"] == "401"
    assert result.header("Content-Type").startswith("application/scim+json")


def test_wrong_token_gets_401(memory_client: FunctionClient) -> None:
    """A wrong bearer token is refused with 401 and the token is not echoed."""
    result = memory_client.get("/Users", token="not-the-token")
    assert result.status == 401
    assert b"not-the-token" not in result.body


def test_unknown_path_gets_404_scim_error(memory_client: FunctionClient) -> None:
    """An unknown path under the SCIM root answers 404 with a SCIM error body."""
    result = memory_client.get("/Nope")
    assert result.status == 404
    assert result.json["schemas"] == [ERROR_SCHEMA]
    assert result.json["status"] == "404"


def test_malformed_json_gets_400_invalid_syntax(memory_client: FunctionClient) -> None:
    """A body that is not JSON gets 400 invalidSyntax, not a 500."""
    result = memory_client.post("/Users", raw=b'{"userName": ')
    assert result.status == 400
    assert result.json["scimType"] == "invalidSyntax"


def test_user_create_get_list_delete_round_trip(memory_client: FunctionClient) -> None:
    """A user can be created (201 + Location), read, listed and deleted (204, then 404)."""
    created = memory_client.post("/Users", {"schemas": [USER_SCHEMA], "userName": "ada@x.test"})
    assert created.status == 201
    user_id = created.json["id"]
    assert created.header("Location") == f"{BASE}/Users/{user_id}"
    assert memory_client.get(f"/Users/{user_id}").json["userName"] == "ada@x.test"
    listed = memory_client.get("/Users").json
    assert listed["totalResults"] == 1 and listed["Resources"][0]["id"] == user_id
    assert memory_client.delete(f"/Users/{user_id}").status == 204
    assert memory_client.get(f"/Users/{user_id}").status == 404


def test_base_url_keeps_route_prefix_and_scheme() -> None:
    """The SCIM root is cut from the request URL at /scim/v2, keeping host and prefix."""
    req = func.HttpRequest("GET", "https://app.example/api/scim/v2/Users/1?x=1", body=b"",
                           headers={})
    assert function_app.base_url(req) == "https://app.example/api/scim/v2"


def test_base_url_setting_wins() -> None:
    """SCIM_BASE_URL, read once into the settings, overrides the URL the request came in
    on (custom domains, proxies) in Location and meta.location."""
    settings = Settings.from_env({"SCIM_STORE": "memory", "SCIM_BEARER_TOKEN": TOKEN,
                                  "SCIM_BASE_URL": "https://scim.contoso.example/scim/v2/"})
    use_api(build_api(settings))
    created = FunctionClient().post("/Users", {"schemas": [USER_SCHEMA], "userName": "b@x"})
    assert created.header("Location").startswith("https://scim.contoso.example/scim/v2/Users/")
    assert created.json["meta"]["location"] == created.header("Location")


def test_nothing_answers_500_on_unhandled_errors(memory_client: FunctionClient) -> None:
    """An unexpected exception in the core becomes a SCIM 500 body, never a crash."""
    api = function_app.get_api()
    original = api.store.tenant

    def boom(*args: object, **kwargs: object) -> object:
        raise RuntimeError("boom")

    api.store.tenant = boom  # type: ignore[method-assign,assignment]
    try:
        result = memory_client.get("/Users/abc")
    finally:
        api.store.tenant = original  # type: ignore[method-assign]
    assert result.status == 500
    assert result.json["schemas"] == [ERROR_SCHEMA]
    assert b"boom" not in result.body


def test_the_app_registers_exactly_the_two_scim_routes_and_the_retention_timer() -> None:
    """Besides the two SCIM HTTP triggers, the management one and the setup page's,
    function_app registers one timer: events_retention."""
    function_app.app.functions_bindings = None
    functions = function_app.app.get_functions()
    function_app.app.functions_bindings = None
    kinds = {f.get_function_name(): getattr(f.get_trigger(), "type", None) for f in functions}
    assert kinds == {"scim": "httpTrigger", "tenant_scim": "httpTrigger",
                     "manage": "httpTrigger", "setup": "httpTrigger",
                     "events_retention": "timerTrigger"}
