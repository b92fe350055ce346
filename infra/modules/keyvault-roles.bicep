// Key Vault data-plane roles: the app reads the tenants' bearer tokens, and with
// appManagesTenantTokens also creates, rotates and deletes them (a vendor's admin console
// running in the app); the deploying admin (optional) may write them, so that
// `python -m scim_core.admin rotate-token` and `tenant create|delete` work.

@description('Name of the existing Key Vault.')
param vaultName string

@description('Object ID of the function app\'s system-assigned identity.')
param appPrincipalId string

@description('Whether the app\'s identity also gets Key Vault Secrets Officer, to create, rotate and delete tenant tokens itself.')
param appManagesTenantTokens bool

@description('Object ID of the admin who runs rotate-token; empty to skip the assignment.')
param adminPrincipalId string

@description('Kind of principal adminPrincipalId refers to.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param adminPrincipalType string

var roleIds = {
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
}

resource vault 'Microsoft.KeyVault/vaults@2024-11-01' existing = {
  name: vaultName
}

resource appSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, appPrincipalId, roleIds.keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.keyVaultSecretsUser)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource appSecretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (appManagesTenantTokens) {
  name: guid(vault.id, appPrincipalId, roleIds.keyVaultSecretsOfficer)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.keyVaultSecretsOfficer)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource adminSecretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(adminPrincipalId)) {
  name: guid(vault.id, adminPrincipalId, roleIds.keyVaultSecretsOfficer)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.keyVaultSecretsOfficer)
    principalId: adminPrincipalId
    principalType: adminPrincipalType
  }
}
