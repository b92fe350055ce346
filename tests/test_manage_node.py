"""A second language proves the management API: examples/node/onboard.mjs (Node 20, plain
fetch) creates a tenant, lists its users and follows its events against the dev host."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.azurite import Azurite
from tests.manage_host import ManageHost, serve_manage
from tests.support import USER_SCHEMA

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def host(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManageHost]:
    yield from serve_manage(azurite, tmp_path_factory.mktemp("node"))


def test_node_example_onboards_a_customer_and_follows_its_events(host: ManageHost) -> None:
    """The Node example creates the tenant, counts its users, and its long-poll receives
    the user.created event of a user provisioned while it waits."""
    node = shutil.which("node")
    assert node is not None, "Node 20 is part of the project's setup"

    process = subprocess.Popen(
        [node, str(ROOT / "examples" / "node" / "onboard.mjs"), "northwind", "Northwind", "1"],
        env={"PATH": "/usr/bin:/bin", "SCIM_MANAGE_URL": host.base,
             "SCIM_MANAGE_KEY": host.key},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    first = json.loads(process.stdout.readline())
    assert first["tenantUrl"].endswith("/tenants/northwind/scim/v2") and first["tokenShown"]
    assert json.loads(process.stdout.readline()) == {"users": 0}
    # The token is shown once, to the Node process; provision with a rotated one.
    status, _, rotated = host.call("POST", "/manage/v1/tenants/northwind/tokens")
    assert status == 201
    request = urllib.request.Request(
        first["tenantUrl"] + "/Users",
        json.dumps({"schemas": [USER_SCHEMA], "userName": "grace@northwind.example"}).encode(),
        method="POST", headers={"Authorization": f"Bearer {rotated['token']}",
                                "Content-Type": "application/scim+json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 201
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert {"event": "user.created", "position": events[0]["position"]} in events
