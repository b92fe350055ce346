// The one secret the template writes: the Tenant URL, which is not sensitive.
// `python -m scim_core.admin show-endpoint --vault-url <url>` reads it back so an admin
// can paste it into the Entra provisioning blade. It is deployed after the function app
// because the URL contains the app's default host name.

@description('Name of the existing Key Vault.')
param vaultName string

@description('The SCIM Tenant URL, https://<host>/scim/v2.')
param tenantUrl string

resource vault 'Microsoft.KeyVault/vaults@2024-11-01' existing = {
  name: vaultName
}

resource tenantUrlSecret 'Microsoft.KeyVault/vaults/secrets@2024-11-01' = {
  // checkov:skip=CKV_AZURE_41: this secret is the public Tenant URL, not a credential; an expiry would only make show-endpoint fail later
  parent: vault
  name: 'scim-tenant-url'
  properties: {
    value: tenantUrl
    contentType: 'text/plain'
  }
}

output secretName string = tenantUrlSecret.name
