"""The kinds of resource this service stores: each resource type and each stored record has one."""

from enum import StrEnum


class Kind(StrEnum):
    USER = "User"
    GROUP = "Group"
