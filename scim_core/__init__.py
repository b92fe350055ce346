"""An Entra-ready SCIM 2.0 service provider core: pure Python, no Azure Functions import."""

from scim_core.api import ScimApi
from scim_core.app import api_from_environment, build_api
from scim_core.config import Settings
from scim_core.http import Request, Response

__all__ = ["Request", "Response", "ScimApi", "Settings", "api_from_environment", "build_api"]
