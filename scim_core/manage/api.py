"""The HTTP-neutral management API (``/manage/v1``): routing, credentials and scopes,
paging, and every failure turned into a problem document, here only. Tenant rules live in
``TenantAdmin``; the directory and the feed are read with the reader library."""

from __future__ import annotations

import base64
import binascii
import concurrent.futures
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from scim_core.activity.build import activity_log
from scim_core.activity.log import ActivityLog
from scim_core.activity.recorder import NullRecorder, Recorder
from scim_core.activity.views import BadQuery, activity_view, health_view
from scim_core.auth.secrets import SecretStore
from scim_core.config import Settings
from scim_core.http import Request, Response
from scim_core.kinds import Kind
from scim_core.manage import directory as shapes
from scim_core.manage.directory import Directory
from scim_core.manage.idempotency import Idempotency
from scim_core.manage.keys import MANAGE, READ, ApiKeys, InvalidKeyRequest, Principal
from scim_core.manage.problems import Problem, json_response, tenant_url_or_none, translate
from scim_core.manage.rows import side_rows
from scim_core.manage.settings import ManageSettings
from scim_core.manage.setup_links import DEFAULT_LINK_SECONDS, InvalidLinkRequest, SetupLinks
from scim_core.manage.tokens import token_versions
from scim_core.operations.tenants import TenantAdmin
from scim_core.store import Store
from scim_core.store.base import IndexKey
from scim_core.tenants import CachedTenants, Tenant
from scim_core.tenants.model import DELETING, is_tenant_id

log = logging.getLogger("scim_core.manage")

ROOT = "/manage/v1"
SETUP_PATH = "/setup/"
"""Where a setup link's URL points (the setup page, ``scim_core.setup``)."""
DEFAULT_LIMIT = 50
ACTIVITY_PARAMS = ("since", "until", "status", "operation", "name", "limit", "cursor")
DELETE_GRACE_SECONDS = 1.0
"""A delete that finishes (or fails) this soon is answered as such; a longer one goes on
in the background and answers 202 with a status to poll."""


class TokenCheck(Protocol):
    """A second kind of management credential (Entra ID access tokens)."""

    def check(self, token: str) -> Principal | None: ...


def _tenant_doc(tenant: Tenant) -> dict[str, Any]:
    return {"id": tenant.id, "name": tenant.name, "state": tenant.state,
            "enabled": tenant.state == "enabled", "created": tenant.created,
            "changed": tenant.changed}


def etag(tenant: Tenant) -> str:
    raw = "\0".join((tenant.id, tenant.name, tenant.state, tenant.changed)).encode()
    return '"' + hashlib.sha256(raw).hexdigest()[:24] + '"'


class ManageApi:
    """Serves ``/manage/v1`` for the tenants of one store."""

    def __init__(self, store: Store, secrets: SecretStore, settings: Settings,
                 manage: ManageSettings | None = None, *, entra: TokenCheck | None = None,
                 recorder: Recorder | None = None, activity: ActivityLog | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.recorder = recorder if recorder is not None else NullRecorder()
        if activity is None:
            rows = getattr(self.recorder, "rows", None)
            if rows is not None:  # read what this process's recorder writes
                activity = ActivityLog(rows, days=settings.activity_retention_days)
            else:
                activity = activity_log(settings, store)
        self.activity = activity
        self.secrets = secrets
        self.settings = settings
        self.manage = manage or ManageSettings()
        rows = side_rows(store)
        self.keys = ApiKeys(rows, cache_seconds=self.manage.key_cache_seconds, clock=clock)
        self.idempotency = Idempotency(rows, clock=clock)
        self.entra = entra
        self.tenants = CachedTenants(store.tenant_registry(), ttl=settings.tenant_cache_seconds,
                                     size=settings.tenant_cache_size)
        table = getattr(store, "table", None)
        self.directory = None if table is None else Directory(
            table, max_waiters=self.manage.max_waiters)
        self._deletions = concurrent.futures.ThreadPoolExecutor(
            max_workers=2, thread_name_prefix="manage-delete")
        self._deleting: dict[str, concurrent.futures.Future[Any]] = {}
        self._lock = threading.Lock()

    def admin(self, request: Request | None = None) -> TenantAdmin:
        """The tenant admin over this API's store and secrets; the Tenant URL of a local
        run is the one the request came in on."""
        site = (request.base_url if request else "").removesuffix(ROOT).rstrip("/")
        options: dict[str, Any] = {"local_base_url": site + "/scim/v2"} if site else {}
        return TenantAdmin(self.store, self.secrets, self.settings, **options)

    def handle(self, request: Request) -> Response:
        """The response to one request; never raises. A call naming a tenant, made with a
        valid credential, is recorded in that tenant's activity."""
        started = time.perf_counter()
        call = _Call()
        response = self._respond(request, call)
        if call.authenticated:
            self._record(request, response, time.perf_counter() - started)
        return response

    def _record(self, request: Request, response: Response, duration_s: float) -> None:
        parts = [p for p in request.path.split("/") if p]
        if len(parts) < 2 or parts[0] != "tenants" or not is_tenant_id(parts[1]):
            return
        try:
            found = self.tenants.get(parts[1])
        except Exception:  # the registry failing: the call is answered, not recorded
            return
        if found is None or found.state == DELETING:
            return
        self.recorder.record(request, response, parts[1], None, duration_s,
                             route=route_template(parts))

    def _respond(self, request: Request, call: _Call) -> Response:
        try:
            return self._dispatch(request, call)
        except Problem as problem:
            return problem.response()
        except Exception as failure:
            translated = translate(failure)
            if translated is not None:
                return translated.response()
            log.exception("Unhandled error serving %s %s", request.method, request.path[:200])
            return Problem(500, "internal", "Internal error; see the function logs.").response()

    # -- routing ---------------------------------------------------------------------------

    def _dispatch(self, request: Request, call: _Call) -> Response:
        method = request.method.upper()
        parts = [p for p in request.path.split("/") if p]
        if parts == ["openapi.json"]:
            _allow(method, "GET")
            from scim_core.manage.openapi import document

            return json_response(200, document(request.base_url))
        principal = self._principal(request)
        call.authenticated = True
        if not parts:
            raise Problem(404, "not-found", "See /manage/v1/openapi.json for the routes.")
        head, rest = parts[0], parts[1:]
        if head == "apikeys":
            return self._apikeys(request, method, rest, principal)
        if head != "tenants":
            raise Problem(404, "not-found", f"No route at {request.path[:200]}.")
        if not rest:
            if method == "GET":
                return self._list_tenants(request, principal)
            _allow(method, "GET", "POST")
            self._need(principal, MANAGE, None)
            return self._post(request, principal, lambda: self._create_tenant(request))
        tenant_id, sub = rest[0], rest[1:]
        if not is_tenant_id(tenant_id):
            raise Problem(404, "not-found", "No tenant has this id.")
        if not sub:
            self._need(principal, MANAGE, tenant_id)
            if method == "GET":
                return self._get_tenant(tenant_id)
            if method == "PATCH":
                return self._update_tenant(request, tenant_id)
            _allow(method, "GET", "PATCH", "DELETE")
            return self._delete_tenant(request, tenant_id)
        if sub[0] == "deletion" and len(sub) == 1:
            self._need(principal, MANAGE, tenant_id)
            _allow(method, "GET")
            return self._deletion_status(request, tenant_id)
        if sub[0] == "tokens":
            self._need(principal, MANAGE, tenant_id)
            return self._tokens(request, method, tenant_id, sub[1:], principal)
        if sub[0] == "setup-links":
            self._need(principal, MANAGE, tenant_id)
            return self._setup_links(request, method, tenant_id, sub[1:], principal)
        self._need(principal, READ, tenant_id)
        _allow(method, "GET")
        if sub in (["activity"], ["health"]):
            return self._activity(request, tenant_id, sub[0])
        return self._read(request, tenant_id, sub)

    def _post(self, request: Request, principal: Principal,
              action: Callable[[], Response]) -> Response:
        key = request.header("Idempotency-Key")
        if key is None:
            return action()

        def answer() -> Response:
            try:
                return action()
            except Problem as problem:
                return problem.response()

        return self.idempotency.run(principal.id, key, request, answer)

    # -- credentials -----------------------------------------------------------------------

    def _principal(self, request: Request) -> Principal:
        header = request.header("Authorization") or ""
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        if scheme.lower() != "bearer" or not value or len(value) > 8192:
            raise _unauthorized("A management API key or Entra ID access token is required "
                                "(Authorization: Bearer ...).")
        found = self.keys.check(value)
        if found is None and self.entra is not None and value.count(".") == 2:
            found = self.entra.check(value)
        if found is None:
            raise _unauthorized("The credential is not valid here (a SCIM token is not a "
                                "management credential).", error="invalid_token")
        return found

    @staticmethod
    def _need(principal: Principal, scope: str, tenant_id: str | None) -> None:
        """Refuse (403) a principal without ``scope`` (``manage`` holds ``read``), or bound
        to another tenant, or to any tenant when the route is not about one."""
        if principal.scope not in (MANAGE, READ):
            raise Problem(403, "forbidden", "The credential carries no management role "
                          "(Manage.All or Read.All).")
        if scope == MANAGE and principal.scope != MANAGE:
            raise Problem(403, "forbidden", "This route needs the 'manage' scope; the "
                          "credential has 'read' (directory and events only).")
        if principal.tenant is not None and principal.tenant != tenant_id:
            raise Problem(403, "forbidden", "The credential is bound to another tenant.")

    # -- tenants ---------------------------------------------------------------------------

    def _list_tenants(self, request: Request, principal: Principal) -> Response:
        self._need(principal, MANAGE, principal.tenant)
        limit = _limit(request, self.manage.page_limit)
        found = self.admin().list()
        if principal.tenant is not None:
            found = [t for t in found if t.id == principal.tenant]
        after = _decode(request.param("next"), "t")
        if after is not None:
            found = [t for t in found if _tenant_order(t) > _tenant_order_id(after)]
        page = found[:limit]
        more = len(found) > limit
        return json_response(200, {"items": [_tenant_doc(t) for t in page],
                                   "next": _encode("t", page[-1].id) if more else None})

    def _create_tenant(self, request: Request) -> Response:
        body = self._body(request, {"id": str, "name": str}, required=("name",))
        admin = self.admin(request)
        with admin:
            tenant, token = admin.create(str(body["name"]), tenant_id=body.get("id"))
            url = tenant_url_or_none(admin, tenant.id)
        self.tenants.forget(tenant.id)
        document = {**_tenant_doc(tenant), "tenantUrl": url, "token": token}
        return json_response(201, document, {
            "Location": f"{request.base_url}/tenants/{tenant.id}", "ETag": etag(tenant),
            "Cache-Control": "no-store"})

    def _show(self, tenant_id: str) -> Tenant:
        try:
            return self.admin().show(tenant_id)
        except Exception as failure:
            problem = translate(failure, missing_tenant=tenant_id)
            if problem is None:
                raise
            raise problem from failure

    def _get_tenant(self, tenant_id: str) -> Response:
        tenant = self._show(tenant_id)
        return json_response(200, _tenant_doc(tenant), {"ETag": etag(tenant)})

    def _update_tenant(self, request: Request, tenant_id: str) -> Response:
        body = self._body(request, {"name": str, "enabled": bool})
        self._show(tenant_id)
        wanted = request.header("If-Match")
        precondition = None
        if wanted is not None and wanted.strip() != "*":
            tags = {v.strip() for v in wanted.split(",")}

            def precondition(tenant: Tenant) -> None:
                # Checked against the registry row the conditional write replaces.
                if etag(tenant) not in tags:
                    raise Problem(412, "precondition-failed", "The tenant changed since "
                                  "that ETag; read it again.", headers={"ETag": etag(tenant)})

        tenant = self.admin().update(tenant_id, name=body.get("name"),
                                     enabled=body.get("enabled"), precondition=precondition)
        self.tenants.forget(tenant_id)
        return json_response(200, _tenant_doc(tenant), {"ETag": etag(tenant)})

    def _delete_tenant(self, request: Request, tenant_id: str) -> Response:
        self._show(tenant_id)
        self.tenants.forget(tenant_id)
        job = self._start_delete(tenant_id)
        concurrent.futures.wait([job], timeout=DELETE_GRACE_SECONDS)
        return self._deletion_answer(request, tenant_id, job)

    def _start_delete(self, tenant_id: str) -> concurrent.futures.Future[Any]:
        with self._lock:
            job = self._deleting.get(tenant_id)
            if job is None or job.done():
                job = self._deletions.submit(self.admin().delete, tenant_id)
                self._deleting[tenant_id] = job
            return job

    def _deletion_answer(self, request: Request, tenant_id: str,
                         job: concurrent.futures.Future[Any]) -> Response:
        location = f"{request.base_url}/tenants/{tenant_id}/deletion"
        if not job.done():
            return json_response(202, {"tenant": tenant_id, "status": "deleting"},
                                 {"Location": location, "Retry-After": "2"})
        failure = job.exception()
        if failure is not None:
            problem = translate(failure)
            if problem is None:
                raise failure
            raise problem
        self.tenants.forget(tenant_id)
        done = job.result()
        return json_response(202, {"tenant": tenant_id, "status": "deleted",
                                   "rows": done.rows, "message": done.message},
                             {"Location": location})

    def _deletion_status(self, request: Request, tenant_id: str) -> Response:
        with self._lock:
            job = self._deleting.get(tenant_id)
        if job is not None:
            if job.done() and job.exception() is None:
                return json_response(200, {"tenant": tenant_id, "status": "deleted"})
            if not job.done():
                return json_response(200, {"tenant": tenant_id, "status": "deleting"},
                                     {"Retry-After": "2"})
        try:
            tenant = self.admin().show(tenant_id)
        except Exception as failure:
            problem = translate(failure, missing_tenant=tenant_id)
            if problem is None:
                raise
            if problem.status == 404:
                return json_response(200, {"tenant": tenant_id, "status": "deleted"})
            raise problem from failure
        if tenant.state != DELETING:
            raise Problem(404, "not-found", "No deletion of this tenant is under way.")
        self._start_delete(tenant_id)  # resumed where an earlier one stopped
        return json_response(200, {"tenant": tenant_id, "status": "deleting"},
                             {"Retry-After": "2"})

    # -- tokens ----------------------------------------------------------------------------

    def _tokens(self, request: Request, method: str, tenant_id: str, rest: list[str],
                principal: Principal) -> Response:
        if not rest:
            if method == "GET":
                self._show(tenant_id)
                return json_response(200, {"items": self.token_versions(tenant_id)})
            _allow(method, "GET", "POST")
            return self._post(request, principal, lambda: self._rotate(request, tenant_id))
        if rest == ["retire"]:
            _allow(method, "POST")
            return self._post(request, principal, lambda: self._retire(tenant_id))
        raise Problem(404, "not-found", f"No route at {request.path[:200]}.")

    def _rotate(self, request: Request, tenant_id: str) -> Response:
        self._show(tenant_id)
        rotation = self.admin(request).rotate(tenant_id)
        return json_response(201, {
            "tenant": tenant_id, "token": rotation.token, "version": rotation.version,
            "previousValid": rotation.previous_valid, "tenantUrl": rotation.tenant_url},
            {"Cache-Control": "no-store"})

    def _retire(self, tenant_id: str) -> Response:
        self._show(tenant_id)
        retired = self.admin().retire_token(tenant_id)
        created = retired.kept_created
        return json_response(200, {
            "tenant": tenant_id, "disabled": retired.disabled,
            "keptVersion": retired.kept_version,
            "keptCreated": None if created is None else created.strftime("%Y-%m-%dT%H:%M:%SZ")})

    # -- activity --------------------------------------------------------------------------

    def _setup_links(self, request: Request, method: str, tenant_id: str, rest: list[str],
                     principal: Principal) -> Response:
        """``/tenants/{id}/setup-links``: create (the link's URL shown once), list, revoke."""
        links = SetupLinks(side_rows(self.store))
        if not rest:
            if method == "GET":
                self._show(tenant_id)
                return json_response(200, {"items": [link.document() for link in
                                                     links.list(tenant_id)], "next": None})
            if method != "POST":
                raise Problem(405, "method-not-allowed", f"{method} is not allowed here.",
                              headers={"Allow": "GET, POST"})

            def create() -> Response:
                body = self._body(request, {"expiresInSeconds": int})
                self._show(tenant_id)
                try:
                    link, value = links.create(tenant_id, seconds=body.get(
                        "expiresInSeconds", DEFAULT_LINK_SECONDS))
                except InvalidLinkRequest as failure:
                    raise Problem(400, "invalid-request", str(failure)) from None
                site = request.base_url.removesuffix(ROOT).rstrip("/")
                return json_response(201, {**link.document(),
                                           "url": site + SETUP_PATH + value},
                                     {"Cache-Control": "no-store"})

            return self._post(request, principal, create)
        if len(rest) == 1:
            if method != "DELETE":
                raise Problem(405, "method-not-allowed", f"{method} is not allowed here.",
                              headers={"Allow": "DELETE"})
            revoked = links.revoke(rest[0], tenant=tenant_id)
            if revoked is None:
                raise Problem(404, "not-found", "This tenant has no setup link with this id.")
            return json_response(200, revoked.document())
        raise Problem(404, "not-found", f"No route at {request.path[:200]}.")

    def _activity(self, request: Request, tenant_id: str, what: str) -> Response:
        found = self.tenants.get(tenant_id)
        if found is None or found.state == DELETING:
            raise Problem(404, "not-found", "No tenant has this id.")
        params = {name: value for name in ACTIVITY_PARAMS
                  if (value := request.param(name)) is not None}
        view = activity_view if what == "activity" else health_view
        try:
            document = view(self.activity, tenant_id, params)
        except (BadQuery, OverflowError) as failure:
            raise Problem(400, "invalid-request", str(failure)[:200]) from None
        if what == "health":
            document["tokenVersions"] = self._version_uses(tenant_id, document)
        return json_response(200, document)

    def token_versions(self, tenant_id: str) -> list[dict[str, Any]]:
        """The token versions' metadata, each with its last use from the activity health
        (None: not used since the log was kept, or within the last minute or so)."""
        used = self._last_used(tenant_id)
        return [{**v, "lastUsed": used.get(v["version"])}
                for v in token_versions(self.admin(), tenant_id)]

    def _last_used(self, tenant_id: str) -> dict[str, str]:
        try:
            found = self.activity.health(tenant_id).get("tokenVersions", [])
        except Exception as failure:  # the log unreadable: the versions are still listed
            log.warning("Token versions listed without their last use: the activity log "
                        "could not be read (%s)", type(failure).__name__)
            return {}
        return {str(v["version"]): str(v["lastUsed"]) for v in found}

    def _version_uses(self, tenant_id: str, health: dict[str, Any]) -> list[dict[str, Any]]:
        """Health's token versions: each current version's creation and last use, then
        versions used but no longer kept (or the static token, ``static``)."""
        used = {str(v["version"]): v["lastUsed"] for v in health.get("tokenVersions", [])}
        try:
            current = token_versions(self.admin(), tenant_id)
        except Exception as failure:
            if translate(failure) is None:
                raise
            current = []  # the secrets unreadable: the uses the log holds are still shown
        out = [{"version": v["version"], "created": v["created"], "valid": v["valid"],
                "lastUsed": used.pop(v["version"], None)} for v in current]
        return out + [{"version": version, "created": None, "lastUsed": at}
                      for version, at in used.items()]

    # -- directory and events --------------------------------------------------------------

    def _read(self, request: Request, tenant_id: str, sub: list[str]) -> Response:
        if self.directory is None:
            raise Problem(404, "directory-unavailable", "The directory and events routes read "
                          "Table Storage: set SCIM_STORE=tables.")
        found = self.tenants.get(tenant_id)
        if found is None or found.state == DELETING:
            raise Problem(404, "not-found", "No tenant has this id.")
        reader = self.directory.tenant(tenant_id)
        limit = _limit(request, self.manage.page_limit)
        after = request.param("next") or None
        kind, rest = sub[0], sub[1:]
        if kind == "events":
            if rest == ["position"]:
                return json_response(200, {"position": reader.position()})
            if rest:
                raise Problem(404, "not-found", f"No route at {request.path[:200]}.")
            return self._events(request, tenant_id, limit)
        if kind == "users" and not rest:
            name, external = request.param("userName"), request.param("externalId")
            if name is not None:
                return _single(reader.get_user_by_name(name), shapes.user)
            if external is not None:
                return self._by_external_id(tenant_id, Kind.USER, external)
            return json_response(200, shapes.first_page(
                reader.list_users(after=after, per_page=limit), shapes.user))
        if kind == "users" and len(rest) == 1:
            return _one(reader.get_user(rest[0]), shapes.user)
        if kind == "users" and len(rest) == 2 and rest[1] == "groups":
            return json_response(200, shapes.first_page(
                reader.list_user_groups(rest[0], after=after, per_page=limit),
                lambda group_id: {"groupId": group_id}))
        if kind == "groups" and not rest:
            name, external = request.param("displayName"), request.param("externalId")
            if name is not None:
                return _single(reader.get_group_by_name(name), shapes.group)
            if external is not None:
                return self._by_external_id(tenant_id, Kind.GROUP, external)
            return json_response(200, shapes.first_page(
                reader.list_groups(after=after, per_page=limit), shapes.group))
        if kind == "groups" and len(rest) == 1:
            return _one(reader.get_group(rest[0]), shapes.group)
        if kind == "groups" and len(rest) == 2 and rest[1] == "members":
            return json_response(200, shapes.first_page(
                reader.list_members(rest[0], after=after, per_page=limit), shapes.member))
        raise Problem(404, "not-found", f"No route at {request.path[:200]}.")

    def _by_external_id(self, tenant_id: str, kind: Kind, value: str) -> Response:
        """Resources by externalId (case-exact, not unique): the store's index, then the
        reader's rows."""
        assert self.directory is not None
        records = self.store.tenant(tenant_id).lookup(kind, IndexKey("externalId", value,
                                                                     False))
        reader = self.directory.tenant(tenant_id)
        items: list[dict[str, Any]] = []
        for record in records[:100]:
            if kind == Kind.USER:
                user = reader.get_user(record.id)
                if user is not None and user.external_id == value:
                    items.append(shapes.user(user))
            else:
                group = reader.get_group(record.id)
                if group is not None and group.external_id == value:
                    items.append(shapes.group(group))
        return json_response(200, {"items": items, "next": None})

    def _events(self, request: Request, tenant_id: str, limit: int) -> Response:
        assert self.directory is not None
        raw_wait = request.param("wait") or "0"
        try:
            wait = float(raw_wait)
        except ValueError:
            wait = -1.0
        if not 0 <= wait <= shapes.MAX_WAIT_SECONDS:
            raise Problem(400, "invalid-request",
                          f"wait is 0 to {shapes.MAX_WAIT_SECONDS:g} seconds.")
        page, _ = self.directory.events(tenant_id, request.param("after") or None, limit,
                                        wait)
        return json_response(200, {"events": [shapes.event(e) for e in page.events],
                                   "next": page.cursor})

    # -- API keys --------------------------------------------------------------------------

    def _apikeys(self, request: Request, method: str, rest: list[str],
                 principal: Principal) -> Response:
        self._need(principal, MANAGE, None)
        if not rest:
            if method == "GET":
                return json_response(200, {"items": [k.document() for k in self.keys.list()],
                                           "next": None})
            _allow(method, "GET", "POST")
            return self._post(request, principal, lambda: self._create_key(request))
        if len(rest) == 1:
            _allow(method, "DELETE")
            revoked = self.keys.revoke(rest[0])
            if revoked is None:
                raise Problem(404, "not-found", "No API key has this id.")
            return json_response(200, revoked.document())
        raise Problem(404, "not-found", f"No route at {request.path[:200]}.")

    def _create_key(self, request: Request) -> Response:
        body = self._body(request, {"scope": str, "tenant": str, "description": str},
                          required=("scope",))
        try:
            key, value = self.keys.create(body["scope"], tenant=body.get("tenant"),
                                          description=body.get("description", ""))
        except (InvalidKeyRequest, ValueError) as failure:
            raise Problem(400, "invalid-request", str(failure)) from None
        return json_response(201, {**key.document(), "key": value},
                             {"Cache-Control": "no-store"})

    # -- bodies ----------------------------------------------------------------------------

    def _body(self, request: Request, fields: dict[str, type], *,
              required: tuple[str, ...] = ()) -> dict[str, Any]:
        """The JSON object of the body, with only ``fields`` of those types."""
        if len(request.body) > self.manage.max_body_bytes:
            raise Problem(413, "payload-too-large",
                          f"A body is at most {self.manage.max_body_bytes} bytes.")
        kind = (request.header("Content-Type") or "application/json").split(";")[0].strip()
        if kind.lower() not in ("application/json", ""):
            raise Problem(415, "unsupported-media-type", "Send application/json.")
        try:
            body = json.loads(request.body or b"{}")
        except (ValueError, UnicodeDecodeError):
            raise Problem(400, "invalid-request", "The body is not JSON.") from None
        if not isinstance(body, dict):
            raise Problem(400, "invalid-request", "The body is a JSON object.")
        for name, value in body.items():
            expected = fields.get(name)
            if expected is None:
                raise Problem(400, "invalid-request", f"Unknown member {str(name)[:40]!r}; "
                              f"expected {', '.join(sorted(fields))}.")
            if not isinstance(value, expected) or (expected is int and isinstance(value,
                                                                                  bool)):
                raise Problem(400, "invalid-request",
                              f"{name} is a {_TYPE_NAMES.get(expected, 'string')}.")
        missing = [name for name in required if name not in body]
        if missing:
            raise Problem(400, "invalid-request", f"{missing[0]} is required.")
        return body


class _Call:
    """What ``handle`` learns of a call while serving it."""

    authenticated = False


TENANT_ROUTES = frozenset({"deletion", "tokens", "users", "groups", "events", "activity",
                           "health", "setup-links"})


def route_template(parts: list[str]) -> str:
    """The route template of a path naming a tenant (``/manage/v1/tenants/{tenant}/users/{id}``):
    ids become placeholders, an unknown segment ``{other}``."""
    out = [ROOT, "tenants", "{tenant}"]
    for position, part in enumerate(parts[2:6]):
        if position == 0:
            out.append(part if part in TENANT_ROUTES else "{other}")
        elif position == 1 and parts[2] in ("users", "groups"):
            out.append("{id}")
        else:
            out.append(part if part in ("retire", "position", "groups", "members")
                       else "{other}")
    return "/".join(out)


_TYPE_NAMES = {bool: "boolean", int: "integer", str: "string"}


def _unauthorized(detail: str, *, error: str | None = None) -> Problem:
    challenge = 'Bearer realm="manage"' + (f', error="{error}"' if error else "")
    return Problem(401, "unauthorized", detail, headers={"WWW-Authenticate": challenge})


def _allow(method: str, *allowed: str) -> None:
    if method not in allowed:
        raise Problem(405, "method-not-allowed", f"{method} is not allowed here.",
                      headers={"Allow": ", ".join(allowed)})


def _limit(request: Request, most: int) -> int:
    raw = request.param("limit")
    if raw is None:
        return min(DEFAULT_LIMIT, most)
    if not raw.isdigit() or not 1 <= int(raw) <= most:
        raise Problem(400, "invalid-request", f"limit is 1 to {most}.")
    return int(raw)


def _encode(kind: str, value: str) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{value}".encode()).decode().rstrip("=")


def _decode(cursor: str | None, kind: str) -> str | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raw = ""
    found, _, value = raw.partition(":")
    if found != kind or not is_tenant_id(value):
        raise Problem(400, "cursor-invalid", "The cursor is not one this listing issued.")
    return value


def _tenant_order(tenant: Tenant) -> tuple[bool, str]:
    return _tenant_order_id(tenant.id)


def _tenant_order_id(tenant_id: str) -> tuple[bool, str]:
    return (tenant_id != "default", tenant_id)


def _one(found: Any, convert: Callable[[Any], dict[str, Any]]) -> Response:
    if found is None:
        raise Problem(404, "not-found", "No such resource in this tenant.")
    return json_response(200, convert(found))


def _single(found: Any, convert: Callable[[Any], dict[str, Any]]) -> Response:
    return json_response(200, {"items": [] if found is None else [convert(found)],
                               "next": None})
