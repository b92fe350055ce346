"""The management API's face of setup links: ``/manage/v1/tenants/{id}/setup-links``
(create, list, revoke)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scim_core.http import Request, Response
from scim_core.manage.problems import Problem, json_response
from scim_core.manage.rows import side_rows
from scim_core.setup.links import DEFAULT_LINK_SECONDS, InvalidLinkRequest, SetupLinks

if TYPE_CHECKING:
    from scim_core.manage.api import ManageApi
    from scim_core.manage.keys import Principal

SETUP_PATH = "/setup/"


def setup_links(api: ManageApi, request: Request, method: str, tenant_id: str,
                rest: list[str], principal: Principal) -> Response:
    """Answer one setup-links route of a tenant the principal may manage."""
    from scim_core.manage.api import ROOT

    links = SetupLinks(side_rows(api.store))
    if not rest:
        if method == "GET":
            api._show(tenant_id)
            return json_response(200, {"items": [link.document() for link in
                                                 links.list(tenant_id)], "next": None})
        if method != "POST":
            raise Problem(405, "method-not-allowed", f"{method} is not allowed here.",
                          headers={"Allow": "GET, POST"})

        def create() -> Response:
            body = api._body(request, {"expiresInSeconds": int})
            api._show(tenant_id)
            try:
                link, value = links.create(tenant_id, seconds=body.get(
                    "expiresInSeconds", DEFAULT_LINK_SECONDS))
            except InvalidLinkRequest as failure:
                raise Problem(400, "invalid-request", str(failure)) from None
            site = request.base_url.removesuffix(ROOT).rstrip("/")
            return json_response(201, {**link.document(), "url": site + SETUP_PATH + value},
                                 {"Cache-Control": "no-store"})

        return api._post(request, principal, create)
    if len(rest) == 1:
        if method != "DELETE":
            raise Problem(405, "method-not-allowed", f"{method} is not allowed here.",
                          headers={"Allow": "DELETE"})
        revoked = links.revoke(rest[0], tenant=tenant_id)
        if revoked is None:
            raise Problem(404, "not-found", "This tenant has no setup link with this id.")
        return json_response(200, revoked.document())
    raise Problem(404, "not-found", f"No route at {request.path[:200]}.")
