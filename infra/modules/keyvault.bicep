// Key Vault that holds the SCIM bearer token.
// Access is Azure RBAC only (no access policies). The bearer secret itself is NOT created
// here: its first value comes from `python -m scim_core.admin rotate-token`, so a token
// never passes through a template parameter or the deployment history.

@description('Azure region for the vault.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Vault name: 3-24 letters, digits and single hyphens, globally unique.')
@minLength(3)
@maxLength(24)
param name string

@description('Days a deleted vault or secret stays recoverable. With purge protection on, the vault name stays reserved this long after deletion.')
@minValue(7)
@maxValue(90)
param softDeleteRetentionInDays int

resource vault 'Microsoft.KeyVault/vaults@2024-11-01' = {
  // checkov:skip=CKV_AZURE_109: a Flex Consumption app without VNet integration has no fixed outbound addresses to allow, and the admin runs rotate-token from a workstation; access is Entra ID plus RBAC only
  // checkov:skip=CKV_AZURE_189: same reason as CKV_AZURE_109; a private vault needs VNet integration and a private endpoint, which this template does not provision
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteRetentionInDays
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

output name string = vault.name
output id string = vault.id
output uri string = vault.properties.vaultUri
