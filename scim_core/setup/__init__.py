"""The customer's setup page (``/setup``): single-use setup links, sessions and the page's
API, over the same tenant admin as the management API."""

from scim_core.manage.setup_links import LinkRefused, SetupLink, SetupLinks, SetupSession
from scim_core.setup.settings import SetupSettings

__all__ = ["LinkRefused", "SetupLink", "SetupLinks", "SetupSession", "SetupSettings"]
