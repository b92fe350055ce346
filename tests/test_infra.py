"""The Bicep gate (infra/check.py) and the security properties of the templates in infra/."""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# One worker (``--dist loadgroup``) runs them all, so the gate runs once for the session; the
# first test waits for all of its cases.
pytestmark = [pytest.mark.timeout(600), pytest.mark.xdist_group("infra")]

REPO = Path(__file__).resolve().parents[1]
INFRA = REPO / "infra"
INFRA_PYTHON = REPO / ".venv-infra" / "bin" / "python"
needs_infra_venv = pytest.mark.skipif(
    not INFRA_PYTHON.exists(),
    reason=".venv-infra/bin/python missing: checkov lives in its own venv "
    "(python3 -m venv .venv-infra && .venv-infra/bin/pip install -r infra/requirements.txt)",
)
APP_SETTINGS = {
    "SCIM_STORE",
    "SCIM_TABLES_ENDPOINT",
    "SCIM_TABLE_NAME",
    "SCIM_KEYVAULT_URL",
    "SCIM_TOKEN_SECRET_NAME",
    "SCIM_EVENTS_QUEUE",
    "SCIM_QUEUES_ENDPOINT",
    "SCIM_MANAGE_ENTRA_ISSUER",
    "SCIM_MANAGE_ENTRA_AUDIENCE",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
    "AzureWebJobsStorage__accountName",
    "AzureWebJobsStorage__credential",
}
# Flex Consumption rejects the first two as app settings; the rest would be secrets.
NOT_IN_APP = ["FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION", "AccountKey", "listKeys("]
# The SDK release and API version the schema check reads for each provider the templates use.
REST_SOURCES = [
    "azure-mgmt-web 9.0.0 (2024-11-01)",
    "azure-mgmt-storage 23.0.0 (2024-01-01)",
    "azure-mgmt-keyvault 12.0.0 (2024-11-01)",
    "azure-mgmt-authorization 4.0.0 (2022-04-01)",
    "azure-mgmt-loganalytics 13.1.1 (2025-07-01)",
    "azure-mgmt-applicationinsights 4.1.0 (2020-02-02)",
    "azure-mgmt-monitor 6.0.2 (2021-05-01-preview)",
]
ROLE_IDS = {
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Storage Queue Data Message Sender": "c6a89b2d-59bc-44d0-9896-0f6e12d7b80a",
    "Storage Table Data Contributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "Key Vault Secrets User": "4633458b-17de-408a-b874-0445c86b69e6",
    "Key Vault Secrets Officer": "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
    "Monitoring Metrics Publisher": "3913510d-42f4-4e42-8a64-420c390055eb",
}


def replace_once(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} should occur once in {path.name}"
    path.write_text(text.replace(old, new))


def without_comments(text: str) -> str:
    """Bicep text without // comment lines or trailing comments, so a comment never counts."""
    return re.sub(r"^\s*//.*\n|\s//[^'\n]*$", "", text, flags=re.MULTILINE)


def bicep(name: str) -> str:
    path = INFRA / name if name == "main.bicep" else INFRA / "modules" / name
    return without_comments(path.read_text())


def has(text: str, line: str) -> bool:
    """True when a line of text is exactly `line`, ignoring indentation."""
    return re.search(rf"^\s*{re.escape(line)}\s*$", text, re.MULTILINE) is not None


# --- the gate's runs -----------------------------------------------------------------------------

Edit = Callable[[Path], None]


def module_path(root: Path, module: str) -> Path:
    return root / module if module == "main.bicep" else root / "modules" / module


def replacing(module: str, old: str, new: str) -> Edit:
    """The edit that replaces the one occurrence of old in module with new."""
    return lambda root: replace_once(module_path(root, module), old, new)


def skip_without_reason(root: Path) -> None:
    path = root / "modules" / "tenant-url-secret.bicep"
    path.write_text(re.sub(r"(// checkov:skip=CKV_AZURE_41):.*", r"\1", path.read_text()))


FLEX_DOC = (
    "https://learn.microsoft.com/azure/azure-functions/functions-app-settings"
    "#flex-consumption-plan-deprecations"
)
APP_SETTINGS_ANCHOR = "          name: 'SCIM_STORE'"


def app_setting(name: str) -> str:
    """The text that adds app setting `name` before SCIM_STORE in functionapp.bicep."""
    setting = f"          name: '{name}'\n          value: 'x'\n        }}\n        {{\n"
    return setting + APP_SETTINGS_ANCHOR


INSECURE_SETTINGS = [
    ("functionapp.bicep", "minTlsVersion: '1.2'", "minTlsVersion: '1.0'", "CKV_AZURE_15"),
    ("functionapp.bicep", "httpsOnly: true", "httpsOnly: false", "CKV_AZURE_70"),
    ("keyvault.bicep", "PurgeProtection: true", "PurgeProtection: false", "CKV_AZURE_110"),
]
FLEX_DEPRECATED = [
    (
        "http20Enabled: true",
        "http20Enabled: true\n      linuxFxVersion: 'Python|3.11'",
        "properties.siteConfig.linuxFxVersion",
        "linuxFxVersion",
    ),
    (
        "httpsOnly: true",
        "httpsOnly: true\n    vnetRouteAllEnabled: false",
        "properties.vnetRouteAllEnabled",
        "vnetRouteAllEnabled",
    ),
    (
        APP_SETTINGS_ANCHOR,
        app_setting("FUNCTIONS_WORKER_RUNTIME"),
        "properties.siteConfig.appSettings[name=FUNCTIONS_WORKER_RUNTIME]",
        "FUNCTIONS_WORKER_RUNTIME",
    ),
    (
        APP_SETTINGS_ANCHOR,
        app_setting("website_run_from_package"),
        "properties.siteConfig.appSettings[name=website_run_from_package]",
        "WEBSITE_RUN_FROM_PACKAGE",
    ),
    (
        "output name string = site.name",
        "resource settings 'Microsoft.Web/sites/config@2024-11-01' = {\n  parent: site\n"
        "  name: 'appsettings'\n  properties: {\n    WEBSITE_CONTENTSHARE: 'x'\n  }\n}\n\n"
        "output name string = site.name",
        "properties.WEBSITE_CONTENTSHARE",
        "WEBSITE_CONTENTSHARE",
    ),
]
SCHEMA_ERRORS = [
    (  # a misspelt property
        "functionapp.bicep",
        "httpsOnly: true",
        "httpOnly: true",
        r"site .*: properties\.httpOnly: no such property in Site at 2024-11-01 "
        r"\(azure-mgmt-web 9\.0\.0\); did you mean 'httpsOnly'\?",
    ),
    (  # a property of a newer API version than the resource declares
        "functionapp.bicep",
        "'Microsoft.Web/sites@2024-11-01'",
        "'Microsoft.Web/sites@2022-09-01'",
        r"site \(Microsoft\.Web/sites@2022-09-01\): properties\.functionAppConfig: "
        r"no such property in Site at 2022-09-01",
    ),
    (  # a misspelt property inside a variable that the body refers to
        "functionapp.bicep",
        "ipAddress: 'AzureActiveDirectory'",
        "ipAdress: 'AzureActiveDirectory'",
        r"properties\.siteConfig\.ipSecurityRestrictions\[\]\.ipAdress: no such property "
        r"in IpSecurityRestriction",
    ),
    (  # the right name in the wrong case
        "functionapp.bicep",
        "instanceMemoryMB: instanceMemoryMB",
        "instanceMemoryMb: instanceMemoryMB",
        r"scaleAndConcurrency\.instanceMemoryMb: the REST name is 'instanceMemoryMB'",
    ),
    (  # a read-only property written
        "functionapp.bicep",
        "httpsOnly: true",
        "httpsOnly: true\n    defaultHostName: 'x'",
        r"properties\.defaultHostName: read-only in Site",
    ),
    (  # a misspelt resource type
        "functionapp.bicep",
        "'Microsoft.Web/serverfarms@2024-11-01'",
        "'Microsoft.Web/serverfarm@2024-11-01'",
        r"resource type Microsoft\.Web/serverfarm does not exist at 2024-11-01 .*"
        r"did you mean Microsoft\.Web/serverfarms\?",
    ),
    (  # an API version the REST definitions do not carry
        "storage.bicep",
        "'Microsoft.Storage/storageAccounts@2024-01-01' =",
        "'Microsoft.Storage/storageAccounts@2019-06-01' =",
        r"API version 2019-06-01 of Microsoft\.Storage is not in the installed REST "
        r"definitions \(azure-mgmt-storage 23\.0\.0: 2024-01-01\)",
    ),
    (  # a read of a property the resource does not have
        "functionapp.bicep",
        "site.properties.defaultHostName",
        "site.properties.defaultHostNam",
        r"site\.properties\.defaultHostNam: not in the response \(Site\)",
    ),
    (  # location is allowed on the credentials policies only, not everywhere
        "tenant-url-secret.bicep",
        "name: 'scim-tenant-url'",
        "name: 'scim-tenant-url'\n  location: 'westeurope'",
        r"location: no such property in SecretCreateOrUpdateParameters",
    ),
    (  # a misspelt module parameter
        "main.bicep",
        "    tokenSecretName: tokenSecretName\n  }",
        "    tokenSecretNam: tokenSecretName\n  }",
        r"module functionApp: params\.tokenSecretNam: modules/functionapp\.bicep declares no "
        r"such parameter \(did you mean 'tokenSecretName'\?\)",
    ),
    (  # a module output that does not exist
        "main.bicep",
        "storage.outputs.tableEndpoint",
        "storage.outputs.tableEndpont",
        r"module storage: storage\.outputs\.tableEndpont: modules/storage\.bicep has no "
        r"output 'tableEndpont'",
    ),
]


@dataclass(frozen=True)
class Case:
    """One run of the gate over a copy of infra/ with at most one edit; checks=None runs all."""

    edit: Edit | None = None
    checks: str | None = None


CASES: dict[str, Case] = {
    "real": Case(),
    "real schema,flex": Case(checks="schema,flex"),
    "syntax error": Case(replacing("keyvault.bicep", "output uri string", "output uri = {{")),
    "skip without reason": Case(skip_without_reason),
    "ftpsState": Case(replacing(
        "functionapp.bicep",
        "http20Enabled: true",
        "http20Enabled: true\n      ftpsState: 'Disabled'",
    )),
    **{f"insecure {check_id}": Case(replacing(module, secure, insecure))
       for module, secure, insecure, check_id in INSECURE_SETTINGS},
    **{f"flex {name}": Case(replacing("functionapp.bicep", old, new), checks="flex")
       for old, new, _path, name in FLEX_DEPRECATED},
    **{f"schema {expected}": Case(replacing(module, old, new), checks="schema")
       for module, old, new, expected in SCHEMA_ERRORS},
}

# Runs in the infra venv: checkov once over the folder holding the copies that run it (its
# start-up is most of a run's cost), then the gate's main() on each copy, reading that copy's
# share of the report (check.read_checkov keeps the entries under the root it is given). The
# runs share one pycep parser and the REST definitions read from the SDKs (read-only caches;
# each run still lists the definitions it used), which separate processes would build anew.
GATE_RUNS = """
import contextlib, io, json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import check, pycep, schemacheck
parser, definitions = pycep.BicepParser(), {}
pycep.BicepParser = lambda: parser

class SharedSources(schemacheck.Sources):
    def __init__(self):
        super().__init__()
        self._cache = definitions

    def source(self, distribution, version):
        known = (distribution, version) in self._cache
        found = super().source(distribution, version)
        if known and found is not None:
            self.read.append(f"{found.package} ({found.version})")
        return found

schemacheck.Sources = SharedSources
cases = json.loads(sys.argv[3])
report = check.checkov_report(Path(sys.argv[2]))
check.run_checkov = lambda root: check.read_checkov(report, root)
runs = {}
for name, case in cases.items():
    argv = ["--root", case["root"]]
    argv += [] if case["checks"] is None else ["--checks", case["checks"]]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = check.main(argv)
    runs[name] = {"returncode": code, "stdout": out.getvalue(), "stderr": err.getvalue()}
print(json.dumps(runs))
"""


@dataclass(frozen=True)
class GateRun:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture(scope="session")
def gate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, GateRun]]:
    """The gate's exit status and output on each of CASES, run once for the session."""
    folder = tmp_path_factory.mktemp("infra-cases")
    roots = {}
    for index, (name, case) in enumerate(CASES.items()):
        runs_checkov = case.checks is None or "checkov" in case.checks
        root = roots[name] = folder / ("checkov" if runs_checkov else "other") / f"case{index}"
        shutil.copytree(INFRA, root, ignore=shutil.ignore_patterns("__pycache__"))
        if case.edit is not None:
            case.edit(root)
    cases = {name: {"root": str(roots[name]), "checks": case.checks}
             for name, case in CASES.items()}
    proc = subprocess.run(
        [str(INFRA_PYTHON), "-c", GATE_RUNS, str(INFRA), str(folder / "checkov"),
         json.dumps(cases)],
        capture_output=True, text=True, timeout=580, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    yield {name: GateRun(**run) for name, run in json.loads(proc.stdout).items()}
    shutil.rmtree(folder, ignore_errors=True)


# --- the gate itself ---------------------------------------------------------------------------


@needs_infra_venv
def test_real_infra_passes_the_gate(gate: dict[str, GateRun]) -> None:
    """The templates in infra/ parse and checkov reports no failed check and no parsing error."""
    proc = gate["real"]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = (
        r"^infra: \d+ bicep files parsed, schema: \d+ resources, \d+ properties and \d+ reads "
        r"checked, 0 problems, flex: 0 deprecated settings, checkov: \d+ passed, 0 failed, "
        r"\d+ skipped$"
    )
    assert re.search(summary, proc.stdout, re.MULTILINE), proc.stdout
    sources = re.search(r"^infra: REST definitions from (.+)$", proc.stdout, re.MULTILINE)
    assert sources is not None, proc.stdout
    for package in REST_SOURCES:
        assert package in sources.group(1), (package, sources.group(1))


@needs_infra_venv
def test_syntax_error_fails_and_names_the_file(gate: dict[str, GateRun]) -> None:
    """A .bicep file that does not parse fails the gate, and the output names that file."""
    proc = gate["syntax error"]
    assert proc.returncode == 1
    assert re.search(r"^PARSE ERROR .*keyvault\.bicep", proc.stdout, re.MULTILINE), proc.stdout


@needs_infra_venv
@pytest.mark.parametrize(("module", "secure", "insecure", "check_id"), INSECURE_SETTINGS)
def test_insecure_setting_fails_checkov(
    gate: dict[str, GateRun], module: str, secure: str, insecure: str, check_id: str
) -> None:
    """Weakening a security setting makes checkov report a failed check and the gate exit 1."""
    proc = gate[f"insecure {check_id}"]
    assert proc.returncode == 1
    failed = rf"^FAILED {check_id} .*{re.escape(module)}"
    assert re.search(failed, proc.stdout, re.MULTILINE), proc.stdout


@needs_infra_venv
def test_skip_without_reason_fails(gate: dict[str, GateRun]) -> None:
    """An inline checkov skip that gives no reason fails the gate."""
    proc = gate["skip without reason"]
    assert proc.returncode == 1
    assert "SKIP WITHOUT REASON CKV_AZURE_41" in proc.stdout, proc.stdout


# --- the Flex Consumption check ----------------------------------------------------------------


@needs_infra_venv
def test_ftps_state_fails_the_whole_gate(gate: dict[str, GateRun]) -> None:
    """Putting siteConfig.ftpsState back fails `make infra-check`, which checkov alone did not."""
    proc = gate["ftpsState"]
    assert proc.returncode == 1, proc.stdout + proc.stderr
    line = r"^FLEX modules/functionapp\.bicep: site .*properties\.siteConfig\.ftpsState: ftpsState "
    assert re.search(line + r"is deprecated", proc.stdout, re.MULTILINE), proc.stdout
    assert FLEX_DOC in proc.stdout
    assert re.search(r"checkov: \d+ passed, 0 failed", proc.stdout), proc.stdout


@needs_infra_venv
@pytest.mark.parametrize(("old", "new", "path", "name"), FLEX_DEPRECATED)
def test_flex_deprecated_setting_fails(
    gate: dict[str, GateRun], old: str, new: str, path: str, name: str
) -> None:
    """A site property or app setting on Microsoft's Flex deprecation list fails, citing it."""
    proc = gate[f"flex {name}"]
    assert proc.returncode == 1, proc.stdout + proc.stderr
    line = rf"^FLEX modules/functionapp\.bicep: \w+ .*: {re.escape(path)}: {name} is deprecated"
    assert re.search(line, proc.stdout, re.MULTILINE), proc.stdout
    assert FLEX_DOC in proc.stdout


def test_flex_check_lists_the_deprecations_the_issue_names() -> None:
    """flexcheck.py cites Microsoft's table and lists the settings and properties it names."""
    source = (INFRA / "flexcheck.py").read_text()
    assert FLEX_DOC in source.replace('"\n    "', "")
    names = set(re.findall(r'^    "(\w+)": "', source, re.MULTILINE))
    expected = {
        "FUNCTIONS_WORKER_RUNTIME",
        "FUNCTIONS_EXTENSION_VERSION",
        "WEBSITE_RUN_FROM_PACKAGE",
        "WEBSITE_CONTENTSHARE",
        "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
        "SCM_DO_BUILD_DURING_DEPLOYMENT",
        "ENABLE_ORYX_BUILD",
        "WEBSITE_NODE_DEFAULT_VERSION",
        "WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT",
        "ftpsState",
        "alwaysOn",
        "linuxFxVersion",
        "use32BitWorkerProcess",
        "javaVersion",
        "netFrameworkVersion",
        "powerShellVersion",
        "functionAppScaleLimit",
        "preWarmedInstanceCount",
    }
    assert expected - names == set()


# --- the schema check ---------------------------------------------------------------------------


@needs_infra_venv
@pytest.mark.parametrize(("module", "old", "new", "expected"), SCHEMA_ERRORS)
def test_schema_check_fails_on_what_azure_would_refuse(
    gate: dict[str, GateRun], module: str, old: str, new: str, expected: str
) -> None:
    """A type, version, property path or read that Azure's REST definitions lack fails the gate."""
    proc = gate[f"schema {expected}"]
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert re.search(rf"^SCHEMA .*{expected}", proc.stdout, re.MULTILINE), proc.stdout


@needs_infra_venv
def test_schema_check_passes_on_the_real_templates_without_checkov(
        gate: dict[str, GateRun]) -> None:
    """The schema and Flex checks alone pass on infra/, reading each provider's pinned SDK."""
    proc = gate["real schema,flex"]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 problems, flex: 0 deprecated settings" in proc.stdout
    assert "checkov" not in proc.stdout


# --- what the templates promise ----------------------------------------------------------------


def test_function_app_is_https_only_tls12_without_ftp_or_basic_auth() -> None:
    """The app is HTTPS only, TLS 1.2, and basic publishing credentials are off for ftp and scm."""
    app = bicep("functionapp.bicep")
    assert has(app, "httpsOnly: true")
    assert has(app, "minTlsVersion: '1.2'") and has(app, "scmMinTlsVersion: '1.2'")
    policy = r"CredentialsPolicies@[\d-]+' = \{\s*parent: site\s*name: '(\w+)'\s*"
    policy += r"location: location\s*properties: \{\s*allow: false"
    assert sorted(re.findall(policy, app)) == ["ftp", "scm"]


def test_ftps_state_is_left_out_and_the_checkov_skip_says_why() -> None:
    """No siteConfig.ftpsState (Flex refuses it); CKV_AZURE_78 is skipped citing the ftp policy."""
    text = (INFRA / "modules" / "functionapp.bicep").read_text()
    assert "ftpsState" not in bicep("functionapp.bicep")
    skip = re.search(r"// checkov:skip=CKV_AZURE_78: (.+)", text)
    assert skip is not None and "basicPublishingCredentialsPolicies" in skip.group(1)


def test_function_app_is_flex_consumption_python_with_system_identity() -> None:
    """FC1 plan, Python 3.11 in functionAppConfig, system identity, one always-ready instance."""
    app, main = bicep("functionapp.bicep"), bicep("main.bicep")
    assert has(app, "name: 'FC1'") and has(app, "tier: 'FlexConsumption'")
    assert has(app, "type: 'SystemAssigned'") and has(app, "type: 'SystemAssignedIdentity'")
    assert has(app, "name: 'python'") and has(main, "pythonVersion: '3.11'")
    assert re.search(r"name: 'http'\s*instanceCount: alwaysReadyInstances", app)
    assert has(main, "param alwaysReadyInstances int = 1")


def test_app_settings_carry_product_names_and_no_secrets() -> None:
    """App settings hold the SCIM_* names and identity-based storage, and no keys."""
    app = bicep("functionapp.bicep")
    settings = dict(re.findall(r"name: '(\w+)'\s*value: ([^\n]+)", app))
    assert set(settings) - {"AllowEntraProvisioning"} == APP_SETTINGS
    assert settings["SCIM_STORE"] == "'tables'"
    assert settings["AzureWebJobsStorage__credential"] == "'managedidentity'"
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == "'Authorization=AAD'"
    assert [word for word in NOT_IN_APP if word in app] == []


def test_storage_account_refuses_shared_keys_and_old_tls() -> None:
    """Storage: shared keys off, TLS 1.2, no public blobs, HTTPS only; the SCIM table is created."""
    storage = bicep("storage.bicep")
    assert has(storage, "allowSharedKeyAccess: false") and has(
        storage, "allowBlobPublicAccess: false"
    )
    assert has(storage, "minimumTlsVersion: 'TLS1_2'")
    assert has(storage, "supportsHttpsTrafficOnly: true")
    assert re.search(r"tables@[\d-]+' = \{\s*parent: tableService\s*name: tableName", storage)
    assert has(bicep("main.bicep"), "param tableName string = 'scim'")


def test_key_vault_uses_rbac_soft_delete_and_purge_protection() -> None:
    """The vault authorises with Azure RBAC and keeps deleted secrets, with purge protection on."""
    vault = bicep("keyvault.bicep")
    assert has(vault, "enableRbacAuthorization: true")
    assert has(vault, "enableSoftDelete: true") and has(vault, "enablePurgeProtection: true")


def test_template_creates_no_bearer_secret() -> None:
    """The only secret the templates write is the public scim-tenant-url; no secure parameter."""
    texts = {p.name: without_comments(p.read_text()) for p in INFRA.rglob("*.bicep")}
    secret = r"vaults/secrets@[\d-]+' = \{\s*(?:parent: \w+\s*)?name: ([^\n]+)"
    found = [(name, m) for name, text in texts.items() for m in re.findall(secret, text)]
    assert found == [("tenant-url-secret.bicep", "'scim-tenant-url'")]
    assert not any("@secure()" in text for text in texts.values())
    assert has(bicep("main.bicep"), "param tokenSecretName string = 'scim-bearer-token'")


def test_role_assignments_use_the_builtin_role_ids() -> None:
    """Six app role assignments with the built-in role IDs (the table role twice: the SCIM
    table and the activity table), a seventh (Secrets Officer) only with
    appManagesTenantTokens; the admin's are optional."""
    names = ("storage-roles.bicep", "keyvault-roles.bicep", "monitoring-roles.bicep")
    roles = "".join(bicep(name) for name in names)
    assert [name for name, id_ in ROLE_IDS.items() if f"'{id_}'" not in roles] == []
    assert roles.count("principalType: 'ServicePrincipal'") == 7
    assert roles.count("= if (!empty(adminPrincipalId)) {") == 3
    assert roles.count("= if (appManagesTenantTokens) {") == 1


def resource_block(text: str, symbol: str) -> str:
    """The text of resource `symbol`, up to the next resource, module or output."""
    return text.split(f"\nresource {symbol} ", 1)[1].split("\n}", 1)[0]


def test_storage_creates_the_events_queue() -> None:
    """The storage module creates the queue service and the events queue (eventsQueueName,
    default scim-events) and outputs its name and the queue endpoint for the app."""
    main, storage = bicep("main.bicep"), bicep("storage.bicep")
    assert has(main, "param eventsQueueName string = 'scim-events'")
    assert has(main, "eventsQueueName: eventsQueueName")
    assert has(storage, "param eventsQueueName string")
    service = resource_block(storage, "queueService")
    assert "'Microsoft.Storage/storageAccounts/queueServices@" in service
    assert has(service, "parent: account") and has(service, "name: 'default'")
    queue = resource_block(storage, "eventsQueue")
    assert "'Microsoft.Storage/storageAccounts/queueServices/queues@" in queue
    assert " existing " not in queue.splitlines()[0]
    assert has(queue, "parent: queueService") and has(queue, "name: eventsQueueName")
    assert has(storage, "output eventsQueueName string = eventsQueue.name")
    assert "var queueEndpoint = account.properties.primaryEndpoints.queue" in storage
    assert re.search(r"^output queueEndpoint string = .*queueEndpoint", storage, re.MULTILINE)


def test_app_settings_name_the_events_queue_and_its_endpoint() -> None:
    """SCIM_EVENTS_QUEUE is the created queue and SCIM_QUEUES_ENDPOINT the account's queue
    endpoint (the app reaches it with its managed identity, like SCIM_TABLES_ENDPOINT)."""
    main, app = bicep("main.bicep"), bicep("functionapp.bicep")
    settings = dict(re.findall(r"name: '(\w+)'\s*value: ([^\n]+)", app))
    assert settings["SCIM_EVENTS_QUEUE"] == "eventsQueueName"
    assert settings["SCIM_QUEUES_ENDPOINT"] == "queuesEndpoint"
    assert has(app, "param eventsQueueName string") and has(app, "param queuesEndpoint string")
    assert has(main, "eventsQueueName: storage.outputs.eventsQueueName")
    assert has(main, "queuesEndpoint: storage.outputs.queueEndpoint")


def test_app_identity_may_send_to_the_events_queue() -> None:
    """The app's identity gets Storage Queue Data Message Sender, scoped to the events queue
    (an existing reference to the queue the storage module created)."""
    main, roles = bicep("main.bicep"), bicep("storage-roles.bicep")
    sender_id = ROLE_IDS["Storage Queue Data Message Sender"]
    assert has(roles, f"storageQueueDataMessageSender: '{sender_id}'")
    queue = resource_block(roles, "eventsQueue")
    assert "queueServices/queues@" in queue and " existing = {" in queue.splitlines()[0]
    assert has(queue, "name: eventsQueueName")
    assignment = resource_block(roles, "eventsQueueSender")
    assert "'Microsoft.Authorization/roleAssignments@" in assignment
    assert has(assignment, "scope: eventsQueue")
    assert "roleIds.storageQueueDataMessageSender)" in assignment
    assert has(assignment, "principalId: principalId")
    assert has(assignment, "principalType: 'ServicePrincipal'")
    assert has(assignment, "name: guid(eventsQueue.id, principalId, "
                           "roleIds.storageQueueDataMessageSender)")
    # after the queue exists: the name comes from the storage module's output
    roles_module = main.split("module storageRoles ", 1)[1].split("\n}", 1)[0]
    assert has(roles_module, "eventsQueueName: storage.outputs.eventsQueueName")


PARSED_RESOURCES = """
import json, sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from check import bicep_files, parse
root = Path(sys.argv[1])
templates, problems = parse(bicep_files(root), root)
print(json.dumps({"problems": problems, "templates": {
    t.rel: {r.symbol: [r.type, r.existing] for r in t.resources.values()} for t in templates},
    "bodies": {t.rel: {r.symbol: r.body for r in t.resources.values()} for t in templates}},
    default=str))
"""


@needs_infra_venv
def test_parsed_templates_hold_the_queue_and_its_role_assignment() -> None:
    """Parsed with pycep (the gate's parser), storage.bicep declares the queue service and
    the events queue, and storage-roles.bicep the queue-scoped role assignment."""
    proc = subprocess.run([str(INFRA_PYTHON), "-c", PARSED_RESOURCES, str(INFRA)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    parsed = json.loads(proc.stdout)
    assert parsed["problems"] == []
    storage = parsed["templates"]["modules/storage.bicep"]
    assert storage["queueService"] == ["Microsoft.Storage/storageAccounts/queueServices", False]
    assert storage["eventsQueue"] == [
        "Microsoft.Storage/storageAccounts/queueServices/queues", False]
    roles = parsed["templates"]["modules/storage-roles.bicep"]
    assert roles["eventsQueue"] == ["Microsoft.Storage/storageAccounts/queueServices/queues", True]
    assert roles["eventsQueueSender"] == ["Microsoft.Authorization/roleAssignments", False]
    sender = parsed["bodies"]["modules/storage-roles.bicep"]["eventsQueueSender"]
    assert sender["scope"] == "eventsQueue"
    assert "'storageQueueDataMessageSender'" in str(sender["properties"]["roleDefinitionId"])
    assert sender["properties"]["principalId"] == "principalId"


PARSED_SCOPES = """
import json, sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from check import bicep_files, parse
root = Path(sys.argv[1])
templates, problems = parse(bicep_files(root), root)
print(json.dumps({"problems": problems, "templates": {t.rel: {
    "types": {r.symbol: r.type for r in t.resources.values()},
    "bodies": {r.symbol: r.body for r in t.resources.values()},
    "variables": t.variables,
    "modules": {m.symbol: m.body for m in t.modules.values()}} for t in templates}},
    default=str))
"""
STORAGE_ACCOUNT = "Microsoft.Storage/storageAccounts"
SCIM_TABLE = "Microsoft.Storage/storageAccounts/tableServices/tables"
EVENTS_QUEUE = "Microsoft.Storage/storageAccounts/queueServices/queues"


@functools.cache
def parsed_templates(root: Path = INFRA) -> dict[str, Any]:
    """Every template under root as the gate's parser (pycep) reads it (once per process: the
    tests only read it)."""
    proc = subprocess.run([str(INFRA_PYTHON), "-c", PARSED_SCOPES, str(root)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    parsed = json.loads(proc.stdout)
    assert parsed["problems"] == []
    templates: dict[str, Any] = parsed["templates"]
    return templates


def role_scopes(template: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Each role assignment of a template: (role key in roleIds, type of the resource it is
    scoped to)."""
    found = {}
    for symbol, body in template["bodies"].items():
        if template["types"][symbol] != "Microsoft.Authorization/roleAssignments":
            continue
        role = re.search(r"'roleIds', 'operand_2': '(\w+)'", str(body["properties"]))
        assert role is not None, body
        found[symbol] = (role.group(1), template["types"][body["scope"]])
    return found


@needs_infra_venv
def test_storage_roles_sit_at_the_narrowest_scope_azure_allows() -> None:
    """The app's and the admin's table roles are scoped to the SCIM table and the activity
    table, the app's queue role to the events queue (send only); the only account-wide role
    is Blob Data Owner, for the host's own containers, and no queue or table role is
    account-wide."""
    roles = parsed_templates()["modules/storage-roles.bicep"]
    assert role_scopes(roles) == {
        "blobOwner": ("storageBlobDataOwner", STORAGE_ACCOUNT),
        "eventsQueueSender": ("storageQueueDataMessageSender", EVENTS_QUEUE),
        "tableContributor": ("storageTableDataContributor", SCIM_TABLE),
        "adminTableContributor": ("storageTableDataContributor", SCIM_TABLE),
        "activityTableContributor": ("storageTableDataContributor", SCIM_TABLE),
        "adminActivityTableContributor": ("storageTableDataContributor", SCIM_TABLE),
    }
    assert roles["bodies"]["scimTable"]["name"] == "tableName"
    assert roles["bodies"]["activityTable"]["name"] == "activityTableName"
    assert roles["bodies"]["scimTable"]["parent"] == "tableService"
    assert "storageQueueDataContributor" not in roles["variables"]["roleIds"]


def test_account_wide_roles_say_why_in_the_template() -> None:
    """The account-wide blob role carries its reason next to it, and the header names the
    host's containers and the deployment package as what keeps it account-wide."""
    text = (INFRA / "modules" / "storage-roles.bicep").read_text()
    before = text.split("\nresource blobOwner ", 1)[0].rsplit("\n\n", 1)[1]
    assert before.startswith("// Account-wide on purpose"), before
    header = text.split("\n\n@description", 1)[0]
    for reason in ("azure-webjobs-hosts", "deployment package", "Storage Blob Data Owner alone"):
        assert reason in header, reason


def test_the_table_role_waits_for_the_table() -> None:
    """storage-roles takes the table's name from the storage module's output, so the
    table-scoped assignment is made after the table exists."""
    main, storage = bicep("main.bicep"), bicep("storage.bicep")
    roles_module = main.split("module storageRoles ", 1)[1].split("\n}", 1)[0]
    assert has(roles_module, "tableName: storage.outputs.tableName")
    assert has(storage, "output tableName string = scimTable.name")


@needs_infra_venv
def test_key_vault_and_storage_audit_logs_go_to_the_workspace() -> None:
    """Diagnostic settings send Key Vault's AuditEvent and the table, queue and blob
    services' StorageRead, StorageWrite and StorageDelete logs to the workspace."""
    templates = parsed_templates()
    diagnostics = templates["modules/diagnostics.bicep"]
    settings = {symbol: body for symbol, body in diagnostics["bodies"].items()
                if diagnostics["types"][symbol] == "Microsoft.Insights/diagnosticSettings"}
    logs = {}
    for body in settings.values():
        assert body["properties"]["workspaceId"] == "workspaceId"
        entries = body["properties"]["logs"]
        entries = diagnostics["variables"][entries] if isinstance(entries, str) else entries
        assert all(entry["enabled"] is True for entry in entries)
        logs[diagnostics["types"][body["scope"]]] = sorted(e["category"] for e in entries)
    storage_logs = ["StorageDelete", "StorageRead", "StorageWrite"]
    assert logs == {
        "Microsoft.KeyVault/vaults": ["AuditEvent"],
        "Microsoft.Storage/storageAccounts/tableServices": storage_logs,
        "Microsoft.Storage/storageAccounts/queueServices": storage_logs,
        "Microsoft.Storage/storageAccounts/blobServices": storage_logs,
    }
    vault = next(b for b in settings.values() if b["scope"] == "vault")
    assert vault["properties"]["logAnalyticsDestinationType"] == "Dedicated"
    assert has(bicep("main.bicep"), "workspaceId: monitoring.outputs.workspaceId")


def test_app_writes_tenant_tokens_only_when_asked() -> None:
    """By default the app's identity only reads tokens (Secrets User); appManagesTenantTokens
    (default false) adds Secrets Officer on the vault, so code in the app can create, rotate
    and delete tenant tokens. The admin gets Secrets Officer and Storage Table Data
    Contributor, what the tenant commands need."""
    main, vault = bicep("main.bicep"), bicep("keyvault-roles.bicep")
    storage = bicep("storage-roles.bicep")
    assert has(main, "param appManagesTenantTokens bool = false")
    assert has(main, "appManagesTenantTokens: appManagesTenantTokens")
    officer = vault.split("resource appSecretsOfficer", 1)[1].split("\nresource ", 1)[0]
    assert "= if (appManagesTenantTokens) {" in officer
    assert "roleIds.keyVaultSecretsOfficer" in officer and "appPrincipalId" in officer
    user = vault.split("resource appSecretsUser", 1)[1].split("\nresource ", 1)[0]
    assert " = {" in user.splitlines()[0]  # always there
    table = storage.split("resource adminTableContributor", 1)[1]
    assert "roleIds.storageTableDataContributor" in table and "adminPrincipalId" in table


def test_entra_service_tag_restriction_is_optional_and_off_by_default() -> None:
    """Allowing only the AzureActiveDirectory service tag is a parameter, off by default."""
    main, app = bicep("main.bicep"), bicep("functionapp.bicep")
    assert has(main, "param restrictToEntraServiceTag bool = false")
    assert has(app, "tag: 'ServiceTag'") and has(app, "ipAddress: 'AzureActiveDirectory'")
    assert "restrictToEntraServiceTag ? 'Deny' : 'Allow'" in app


def test_allowed_ip_ranges_become_allow_rules_beside_entra_when_restricted() -> None:
    """allowedIpRanges (empty by default) adds one Allow rule per range, ahead of the Deny."""
    main, app = bicep("main.bicep"), bicep("functionapp.bicep")
    assert has(main, "param allowedIpRanges array = []")
    assert has(main, "allowedIpRanges: allowedIpRanges") and has(app, "param allowedIpRanges array")
    loop = re.search(
        r"^var allowedAddressRules = \[for \((\w+), (\w+)\) in allowedIpRanges: \{(.*?)^\}\]",
        app,
        re.MULTILINE | re.DOTALL,
    )
    assert loop is not None
    item, index, rule = loop.groups()
    assert has(rule, "action: 'Allow'") and has(rule, f"ipAddress: {item}")
    assert "tag:" not in rule  # a plain address range, not a service tag
    # Entra's rule has priority 100; the address rules come after it, each with its own.
    assert has(rule, f"priority: 200 + {index}") and has(app, "priority: 100")
    assert re.search(rf"name: 'AllowAddress\$\{{{index} \+ 1\}}'", rule)
    rules = "restrictToEntraServiceTag ? concat(entraOnlyRules, allowedAddressRules) : []"
    assert has(app, f"ipSecurityRestrictions: {rules}")
    deny = "restrictToEntraServiceTag ? 'Deny' : 'Allow'"
    assert has(app, f"ipSecurityRestrictionsDefaultAction: {deny}")
    assert has(app, "scmIpSecurityRestrictionsUseMain: false")


def test_readme_parameter_table_lists_every_template_parameter() -> None:
    """docs/deploying.md's Parameters table names exactly the parameters of main.bicep, in
    their order."""
    params = re.findall(r"^param (\w+) ", bicep("main.bicep"), re.MULTILINE)
    readme = (REPO / "docs" / "deploying.md").read_text()
    table = readme.split("\n## Parameters\n", 1)[1].split("\n## ", 1)[0]
    assert re.findall(r"^\| `(\w+)` \|", table, re.MULTILINE) == params


def test_deploy_checklist_uses_real_commands_parameters_and_outputs() -> None:
    """docs/deploy-check.md runs admin subcommands that exist, with main.bicep's parameters."""
    doc = (REPO / "docs" / "deploy-check.md").read_text()
    admin = (REPO / "scim_core" / "admin.py").read_text()
    subcommands = set(re.findall(r'^\s*(?:\w+ = )?add\(\w+, "([\w-]+)"', admin, re.MULTILINE))
    used = set(re.findall(r"python -m scim_core\.admin ([\w-]+)", doc))
    assert used == {"rotate-token", "retire-token", "show-endpoint"} <= subcommands
    params = set(re.findall(r"^param (\w+) ", bicep("main.bicep"), re.MULTILINE))
    given = set(re.findall(r"'?\b(\w+)=[\[$\w]", " ".join(re.findall(r"--parameters .*", doc))))
    assert given and given <= params, given - params
    outputs = set(re.findall(r"^output (\w+) ", bicep("main.bicep"), re.MULTILINE))
    assert set(re.findall(r"output `(\w+)`", doc)) == outputs - {"STORAGE_ACCOUNT_NAME"}
    for step in ("what-if", "az deployment group create", "func azure functionapp publish"):
        assert step in doc, step
    assert "Test Connection" in doc and "Provision on demand" in doc


def test_outputs_name_the_app_tenant_url_vault_and_storage() -> None:
    """main.bicep outputs the app name, the /scim/v2 Tenant URL, the vault URL and the storage."""
    main = bicep("main.bicep")
    outputs = re.findall(r"^output (\w+) string = ", main, re.MULTILINE)
    expected = ["FUNCTION_APP_NAME", "SCIM_TENANT_URL", "SCIM_KEYVAULT_URL", "STORAGE_ACCOUNT_NAME",
                "SCIM_TABLES_ENDPOINT", "SCIM_MANAGE_URL"]
    assert outputs == expected
    assert "'https://${functionApp.outputs.defaultHostName}/scim/v2'" in main
    assert "'https://${functionApp.outputs.defaultHostName}/manage/v1'" in main


def test_azd_files_bind_the_same_template() -> None:
    """azure.yaml deploys service scim as a Python function from infra/, fed by azd variables."""
    azure_yaml = (REPO / "azure.yaml").read_text()
    for line in ("path: infra", "scim:", "project: .", "language: python", "host: function"):
        assert has(azure_yaml, line), line
    params = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert params["environmentName"]["value"] == "${AZURE_ENV_NAME}"
    assert params["location"]["value"] == "${AZURE_LOCATION}"
    assert params["adminPrincipalId"]["value"] == "${AZURE_PRINCIPAL_ID}"
