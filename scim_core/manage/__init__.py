"""The management API (``/manage/v1``): tenants, tokens, directory, events and API keys
for a vendor's backend in any language; HTTP-neutral, a sibling of the SCIM API."""

from scim_core.manage.api import ManageApi
from scim_core.manage.keys import ApiKeys, Principal
from scim_core.manage.settings import ManageSettings

__all__ = ["ApiKeys", "ManageApi", "ManageSettings", "Principal"]
