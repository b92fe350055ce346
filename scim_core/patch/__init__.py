"""The SCIM PATCH engine (RFC 7644 §3.5.2) with every shape Microsoft Entra ID sends."""

from scim_core.patch.engine import PatchResult, apply_patch, member_change_alone

__all__ = ["PatchResult", "apply_patch", "member_change_alone"]
