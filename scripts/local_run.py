"""``make run``: Azurite plus the dev host, printing the Tenant URL and bearer token.

A token is generated once and kept in local.settings.json (which git ignores) when none
is set, so the value pasted into Entra keeps working across restarts.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ROOT / "local.settings.json"
EXAMPLE = ROOT / "local.settings.example.json"
AZURITE = ROOT / "node_modules" / ".bin" / "azurite-table"
TABLE_PORT = 10002


def ensure_settings() -> dict[str, str]:
    """local.settings.json with a bearer token, created from the example if missing."""
    if not SETTINGS.exists():
        shutil.copyfile(EXAMPLE, SETTINGS)
    doc = json.loads(SETTINGS.read_text(encoding="utf-8"))
    values = doc.setdefault("Values", {})
    if not os.environ.get("SCIM_BEARER_TOKEN") and not values.get("SCIM_BEARER_TOKEN"):
        values["SCIM_BEARER_TOKEN"] = secrets.token_urlsafe(32)
        SETTINGS.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return {str(k): str(v) for k, v in values.items()}


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start_azurite() -> subprocess.Popen[bytes] | None:
    """Azurite's table service on its default port, data under .azurite/ (reused if running)."""
    if port_open(TABLE_PORT):
        print(f"Using the Azurite already listening on 127.0.0.1:{TABLE_PORT}.")
        return None
    location = ROOT / ".azurite"
    location.mkdir(exist_ok=True)
    process = subprocess.Popen(
        [str(AZURITE), "--tableHost", "127.0.0.1", "--tablePort", str(TABLE_PORT),
         "--location", str(location), "--silent", "--skipApiVersionCheck"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not port_open(TABLE_PORT):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("Azurite did not start; run `npm ci` and try again.")
        time.sleep(0.1)
    return process


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "7071")))
    args = parser.parse_args()
    values = ensure_settings()
    store = os.environ.get("SCIM_STORE") or values.get("SCIM_STORE", "tables")
    azurite = start_azurite() if store == "tables" else None
    sys.path.insert(0, str(ROOT))
    import devhost

    try:
        server = devhost.serve(args.host, args.port)
        token = os.environ["SCIM_BEARER_TOKEN"]
        prefix = devhost.route_prefix().strip("/")
        root = "/".join(p for p in (prefix, "scim/v2") if p)
        print(f"Tenant URL:    http://{args.host}:{server.server_address[1]}/{root}")
        print(f"Secret Token:  {token}")
        print("Store:         " + ("Azurite (data in .azurite/)" if store == "tables"
                                   else "in memory"))
        import function_app  # a fresh management API key each run, shown once

        key = function_app.get_manage_api().keys.create("manage", description="make run")[1]
        print(f"Management:    http://{args.host}:{server.server_address[1]}/manage/v1  "
              f"(API key: {key})")
        print("Press Ctrl+C to stop.", flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        if azurite is not None:
            azurite.terminate()
            azurite.wait(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
