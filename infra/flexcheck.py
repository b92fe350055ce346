"""Flex Consumption check: no site property or app setting that Flex Consumption deprecates.

Source: Microsoft's "Flex Consumption plan deprecations" table in the Azure Functions app
settings reference,
https://learn.microsoft.com/azure/azure-functions/functions-app-settings#flex-consumption-plan-deprecations
(revision of 2025-12-22). Some of these are refused outright by the regional stamps that
enforce the table (ARM error 51021 for site configuration properties such as ftpsState), the
others are ignored or conflict with `functionAppConfig`; either way a template that sets them
deploys in one region and fails, or misbehaves, in another. The reasons below are this
project's summary of that table.

Every Microsoft.Web/sites resource in infra/ is a Flex Consumption app (the only plan the
templates create is FC1), so every one is checked: its `properties`, `properties.siteConfig`
and `siteConfig.appSettings`, and any `sites/config` child named `web` or `appsettings`.
Names are compared without regard to case, as App Service compares them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bicepdoc import Resource, Template, elements, key_name, objects

DOC_URL = (
    "https://learn.microsoft.com/azure/azure-functions/functions-app-settings"
    "#flex-consumption-plan-deprecations"
)

# App settings (name -> what to use instead, or why not).
APP_SETTINGS: dict[str, str] = {
    "ENABLE_ORYX_BUILD": "use the remoteBuild option of the deployment",
    "FUNCTIONS_EXTENSION_VERSION": "the platform sets the runtime version",
    "FUNCTIONS_WORKER_RUNTIME": "use functionAppConfig.runtime.name",
    "FUNCTIONS_WORKER_RUNTIME_VERSION": "use functionAppConfig.runtime.version",
    "FUNCTIONS_MAX_HTTP_CONCURRENCY": "use the http trigger concurrency in scaleAndConcurrency",
    "FUNCTIONS_WORKER_PROCESS_COUNT": "not valid on Flex Consumption",
    "FUNCTIONS_WORKER_DYNAMIC_CONCURRENCY_ENABLED": "not valid on Flex Consumption",
    "SCM_DO_BUILD_DURING_DEPLOYMENT": "use the remoteBuild option of the deployment",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING": "use functionAppConfig.deployment",
    "WEBSITE_CONTENTOVERVNET": "not used for networking on Flex Consumption",
    "WEBSITE_CONTENTSHARE": "use functionAppConfig.deployment",
    "WEBSITE_DNS_SERVER": "DNS comes from the integrated virtual network",
    "WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT": "use scaleAndConcurrency.maximumInstanceCount",
    "WEBSITE_NODE_DEFAULT_VERSION": "use functionAppConfig.runtime.version",
    "WEBSITE_RUN_FROM_PACKAGE": "not used for deployments on Flex Consumption",
    "WEBSITE_SKIP_CONTENTSHARE_VALIDATION": "there is no content share on Flex Consumption",
    "WEBSITE_VNET_ROUTE_ALL": "not used for networking on Flex Consumption",
}

# Site properties, under `properties` or `properties.siteConfig` (name -> reason). The table
# names `isReserved`, which is no REST property of a site; `reserved` (its nearest REST name)
# is left alone: the Azure Verified Modules web/site module sends `reserved: true` on every
# Linux site, Flex Consumption apps included.
SITE_PROPERTIES: dict[str, str] = {
    "alwaysOn": "not valid on Flex Consumption",
    "containerSize": "use scaleAndConcurrency.instanceMemoryMB",
    "dnsConfiguration": "custom DNS comes from the integrated virtual network",
    "ftpsState": "FTPS is not supported (ARM error 51021)",
    "isReserved": "not valid on Flex Consumption",
    "isXenon": "not valid on Flex Consumption",
    "javaVersion": "use functionAppConfig.runtime.version",
    "linuxFxVersion": "use functionAppConfig.runtime",
    "netFrameworkVersion": "use functionAppConfig.runtime.version",
    "powerShellVersion": "use functionAppConfig.runtime.version",
    "functionAppScaleLimit": "use scaleAndConcurrency.maximumInstanceCount",
    "preWarmedInstanceCount": "use scaleAndConcurrency.alwaysReady",
    "use32BitWorkerProcess": "32-bit workers are not supported",
    "vnetBackupRestoreEnabled": "not used for networking on Flex Consumption",
    "vnetContentShareEnabled": "not used for networking on Flex Consumption",
    "vnetImagePullEnabled": "not used for networking on Flex Consumption",
    "vnetRouteAllEnabled": "not used for networking on Flex Consumption",
    "windowsFxVersion": "not valid on Flex Consumption",
}

_SETTINGS = {name.lower(): (name, why) for name, why in APP_SETTINGS.items()}
_PROPERTIES = {name.lower(): (name, why) for name, why in SITE_PROPERTIES.items()}


def check(templates: list[Template]) -> list[str]:
    """One line per deprecated property or app setting that a template sets."""
    problems: list[str] = []
    for template in templates:
        for resource in template.resources.values():
            if resource.existing:
                continue
            for path, name, why in _findings(resource, template):
                problems.append(
                    f"{template.rel}: {resource.label}: {path}: {name} is deprecated on the "
                    f"Flex Consumption plan ({why}; {DOC_URL})"
                )
    return problems


def _findings(resource: Resource, template: Template) -> Iterator[tuple[str, str, str]]:
    kind = resource.type.lower()
    if kind == "microsoft.web/sites":
        for props in objects(resource.body.get("properties"), template):
            yield from _site_properties(props, "properties", template)
    elif kind == "microsoft.web/sites/config":
        name = str(resource.body.get("name", "")).lower()
        for props in objects(resource.body.get("properties"), template):
            if name == "web":
                yield from _site_config(props, "properties", template)
            elif name == "appsettings":
                for key in props:
                    yield from _setting(key_name(key), f"properties.{key_name(key)}")


def _site_properties(
    props: dict[str, Any], path: str, template: Template
) -> Iterator[tuple[str, str, str]]:
    for key, value in props.items():
        key = key_name(key)
        if key.lower() in _PROPERTIES:
            name, why = _PROPERTIES[key.lower()]
            yield f"{path}.{key}", name, why
        elif key == "siteConfig":
            for config in objects(value, template):
                yield from _site_config(config, f"{path}.siteConfig", template)


def _site_config(
    config: dict[str, Any], path: str, template: Template
) -> Iterator[tuple[str, str, str]]:
    for key, value in config.items():
        key = key_name(key)
        if key.lower() in _PROPERTIES:
            name, why = _PROPERTIES[key.lower()]
            yield f"{path}.{key}", name, why
        elif key == "appSettings":
            for item in elements(value, template):
                for setting in objects(item, template):
                    setting_name = setting.get("name")
                    if isinstance(setting_name, str):
                        yield from _setting(setting_name, f"{path}.appSettings")


def _setting(name: str, path: str) -> Iterator[tuple[str, str, str]]:
    if name.lower() in _SETTINGS:
        canonical, why = _SETTINGS[name.lower()]
        yield f"{path}[name={name}]" if path.endswith("appSettings") else path, canonical, why
