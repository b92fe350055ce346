"""The built-in schemas: core User and Group (RFC 7643 §4) and the enterprise User extension."""

from __future__ import annotations

from scim_core.schema.model import (
    BOOLEAN,
    COMPLEX,
    DATETIME,
    REFERENCE,
    Attribute,
    ResourceType,
    Schema,
)

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_USER_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def _s(name: str, description: str = "", **kw: object) -> Attribute:
    return Attribute(name=name, description=description, **kw)  # type: ignore[arg-type]


def _multi(name: str, description: str, *, types: tuple[str, ...], value_type: str = "string",
           extra: tuple[Attribute, ...] = (), returned: str = "default",
           mutability: str = "readWrite", reference_types: tuple[str, ...] = (),
           value_index: str | None = None) -> Attribute:
    """A multi-valued complex attribute with the RFC 7643 §2.4 value/display/type/primary;
    ``value_index`` names the index that finds resources by ``value``."""
    subs = (
        _s("value", f"The {name} value.", type=value_type, mutability=mutability,
           reference_types=reference_types, index=value_index),
        _s("display", "A human-readable name, primarily for display.", mutability=mutability),
        _s("type", "A label indicating the attribute's function.", canonical_values=types,
           mutability=mutability),
        _s("primary", "Whether this is the preferred value.", type=BOOLEAN, mutability=mutability),
        *extra,
    )
    return _s(name, description, type=COMPLEX, multi_valued=True, sub_attributes=subs,
              returned=returned, mutability=mutability)


_NAME = _s(
    "name", "The components of the user's real name.", type=COMPLEX,
    sub_attributes=(
        _s("formatted", "The full name, formatted for display."),
        _s("familyName", "The family name."),
        _s("givenName", "The given name."),
        _s("middleName", "The middle name(s)."),
        _s("honorificPrefix", "The honorific prefix(es), e.g. 'Ms.'."),
        _s("honorificSuffix", "The honorific suffix(es), e.g. 'III'."),
    ),
)

_ADDRESSES = _s(
    "addresses", "Physical mailing addresses.", type=COMPLEX, multi_valued=True,
    sub_attributes=(
        _s("formatted", "The full mailing address, formatted for display."),
        _s("streetAddress", "The street address."),
        _s("locality", "The city or locality."),
        _s("region", "The state or region."),
        _s("postalCode", "The zip or postal code."),
        _s("country", "The country name (ISO 3166-1 alpha-2 recommended)."),
        _s("type", "A label indicating the address's function.",
           canonical_values=("work", "home", "other")),
        _s("primary", "Whether this is the preferred address.", type=BOOLEAN),
    ),
)

_MEMBER_OF = _multi(
    "groups", "Groups the user belongs to (maintained by the server from group membership).",
    types=("direct", "indirect"), value_type="string", mutability="readOnly",
    extra=(_s("$ref", "The URI of the group.", type=REFERENCE, reference_types=("Group",),
              mutability="readOnly"),),
)

USER = Schema(
    id=USER_SCHEMA,
    name="User",
    description="User Account",
    attributes=(
        _s("userName", "Unique identifier for the user, as used to sign in.", required=True,
           uniqueness="server", index="userName"),
        _NAME,
        _s("displayName", "The name of the user, suitable for display."),
        _s("nickName", "The casual way to address the user."),
        _s("profileUrl", "A URI of the user's online profile.", type=REFERENCE,
           reference_types=("external",)),
        _s("title", "The user's title, such as 'Vice President'."),
        _s("userType", "The relationship between the organization and the user."),
        _s("preferredLanguage", "The user's preferred written or spoken language."),
        _s("locale", "The user's default location for localization."),
        _s("timezone", "The user's time zone (IANA name)."),
        _s("active", "The user's administrative status.", type=BOOLEAN),
        _s("password", "The user's cleartext password; accepted and never stored or returned.",
           mutability="writeOnly", returned="never"),
        _multi("emails", "Email addresses for the user.", types=("work", "home", "other"),
               value_index="email"),
        _multi("phoneNumbers", "Phone numbers for the user.",
               types=("work", "home", "mobile", "fax", "pager", "other")),
        _multi("ims", "Instant messaging addresses for the user.",
               types=("aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo")),
        _multi("photos", "URLs of photos of the user.", types=("photo", "thumbnail"),
               value_type=REFERENCE, reference_types=("external",)),
        _ADDRESSES,
        _MEMBER_OF,
        _multi("entitlements", "Entitlements of the user.", types=()),
        _multi("roles", "Roles of the user.", types=()),
        _multi("x509Certificates", "Certificates of the user.", types=(), value_type="binary"),
    ),
)

ENTERPRISE_USER = Schema(
    id=ENTERPRISE_USER_SCHEMA,
    name="EnterpriseUser",
    description="Enterprise User",
    attributes=(
        _s("employeeNumber", "An identifier assigned by the organization."),
        _s("costCenter", "The name of a cost center."),
        _s("organization", "The name of an organization."),
        _s("division", "The name of a division."),
        _s("department", "The name of a department."),
        _s(
            "manager", "The user's manager.", type=COMPLEX,
            sub_attributes=(
                _s("value", "The id of the manager's User resource.", case_exact=True),
                _s("$ref", "The URI of the manager's User resource.", type=REFERENCE,
                   reference_types=("User",)),
                _s("displayName", "The manager's display name.", mutability="readOnly"),
            ),
        ),
    ),
)

GROUP = Schema(
    id=GROUP_SCHEMA,
    name="Group",
    description="Group",
    attributes=(
        _s("displayName", "A human-readable name for the group; unique.", required=True,
           uniqueness="server", index="displayName"),
        _s(
            "members", "The members of the group (users).", type=COMPLEX, multi_valued=True,
            sub_attributes=(
                _s("value", "The id of the member.", case_exact=True, mutability="immutable"),
                _s("$ref", "The URI of the member.", type=REFERENCE,
                   reference_types=("User", "Group"), mutability="immutable"),
                _s("display", "The member's display name.", mutability="immutable"),
                _s("type", "The type of the member.", canonical_values=("User", "Group"),
                   mutability="immutable"),
            ),
        ),
    ),
)

# Attributes every resource has (RFC 7643 §3.1); they are not in any schema's list.
COMMON_ATTRIBUTES: tuple[Attribute, ...] = (
    _s("id", "Unique identifier assigned by the service provider.", case_exact=True,
       mutability="readOnly", returned="always", uniqueness="server"),
    _s("externalId", "Identifier assigned by the provisioning client.", case_exact=True,
       index="externalId"),
    _s(
        "meta", "Resource metadata.", type=COMPLEX, mutability="readOnly",
        sub_attributes=(
            _s("resourceType", "The resource type.", case_exact=True, mutability="readOnly"),
            _s("created", "When the resource was added.", type=DATETIME, mutability="readOnly"),
            _s("lastModified", "When the resource was last changed.", type=DATETIME,
               mutability="readOnly"),
            _s("location", "The URI of the resource.", type=REFERENCE, case_exact=True,
               mutability="readOnly"),
            _s("version", "The version (entity tag) of the resource.", case_exact=True,
               mutability="readOnly"),
        ),
    ),
)

USER_TYPE = ResourceType(
    name="User", endpoint="/Users", schema=USER_SCHEMA, description="User Account",
    extensions=((ENTERPRISE_USER_SCHEMA, False),),
)
GROUP_TYPE = ResourceType(name="Group", endpoint="/Groups", schema=GROUP_SCHEMA,
                          description="Group")
