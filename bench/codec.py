"""The azure-core batch codec (``scim_core.store.tables.sdk_batches``) on or off.

``python -m bench.codec on|off [dev host arguments]`` runs the dev host with the codec
installed, or kept out, before the app is imported (its forked workers inherit that);
``python -m bench --no-batch-codec`` uses it.
"""

from __future__ import annotations

import runpy
import sys

_INSTALLERS = ("install_batch_codec",)


def _not_installed() -> bool:
    return False


def disable() -> None:
    """Uninstalls the codec and makes every reference to its installer a no-op in this
    process, so that building the app or a store leaves azure-core's own helpers in place."""
    from scim_core.store.tables import sdk_batches

    sdk_batches.uninstall_batch_codec()
    installers = [f for f in (getattr(sdk_batches, n, None) for n in _INSTALLERS) if f]
    for module in list(sys.modules.values()):
        names = getattr(module, "__dict__", {})
        for name, value in list(names.items()):
            if any(value is f for f in installers):
                setattr(module, name, _not_installed)


def enable() -> None:
    """Installs the codec in this process (what the app's builder does)."""
    from scim_core.store.tables import sdk_batches

    if not sdk_batches.install_batch_codec():
        raise SystemExit("bench.codec: the batch codec does not install on this azure-core")


def set_codec(on: bool) -> None:
    if on:
        enable()
    else:
        disable()


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in ("on", "off"):
        raise SystemExit("usage: python -m bench.codec on|off [dev host arguments]")
    set_codec(argv[0] == "on")
    sys.argv = ["devhost", *argv[1:]]
    runpy.run_module("devhost", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
