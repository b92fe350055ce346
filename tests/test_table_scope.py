"""The table store works with a credential scoped to its one table, as infra/ grants it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential
from azure.data.tables import TableClient, TableSasPermissions, generate_table_sas

from scim_core.store.tables import TableStore
from tests.azurite import ACCOUNT_KEY, ACCOUNT_NAME, FAST_CLIENT_OPTIONS, Azurite, unique_table_name
from tests.conftest import make_api
from tests.support import FunctionClient, use_api


def test_a_table_scoped_credential_serves_without_being_allowed_to_create_tables(
        azurite: Azurite) -> None:
    """With a credential that may use the SCIM table's rows but not create tables (Azurite
    answers create_table 403 to a table SAS, as Azure may to a table-scoped role), requests
    are served: GET of a missing user is 404, not 503 from the refused create. (Azurite
    also refuses $batch to a table SAS, so writes cannot be shown this way.)"""
    name = unique_table_name()
    owner = TableClient.from_connection_string(azurite.connection_string, name)
    owner.create_table()
    sas = generate_table_sas(
        AzureNamedKeyCredential(ACCOUNT_NAME, ACCOUNT_KEY), name,
        permission=TableSasPermissions(read=True, add=True, update=True, delete=True),
        expiry=datetime.now(UTC) + timedelta(hours=1))
    endpoint = f"http://127.0.0.1:{azurite.port}/{ACCOUNT_NAME}"
    scoped = TableClient(endpoint, name, credential=AzureSasCredential(sas), **FAST_CLIENT_OPTIONS)
    store = TableStore(scoped)
    try:
        use_api(make_api(store))
        missing = FunctionClient().get("/Users/2819c223-7f76-453a-919d-413861904646")
        assert missing.status == 404, missing.body
    finally:
        use_api(None)
        store.close()
        owner.delete_table()
