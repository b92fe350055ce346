// The whole SCIM endpoint in one resource-group deployment:
//   az deployment group create -g <rg> -f infra/main.bicep -p adminPrincipalId=<your object id>
// or `azd up` (azure.yaml at the repo root). See "Deploy to Azure" in README.md.

targetScope = 'resourceGroup'

@description('Name of the environment, e.g. dev or prod. Goes into tags and, with the resource group ID, into the unique suffix of every resource name.')
@minLength(1)
@maxLength(32)
param environmentName string = 'prod'

@description('Short prefix for resource names: 2-10 lowercase letters or digits.')
@minLength(2)
@maxLength(10)
param namePrefix string = 'scim'

@description('Azure region for all resources. Must offer the Flex Consumption plan.')
param location string = resourceGroup().location

@description('Always-ready instances for the http trigger group. Entra gives up on slow responses, so 1 keeps the endpoint warm; 0 allows scale to zero and is cheapest, at the price of cold starts.')
@minValue(0)
@maxValue(20)
param alwaysReadyInstances int = 1

@description('Memory of each Flex Consumption instance in MB (512, 2048 or 4096).')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Upper bound on the number of instances the app may scale out to (40-1000).')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('When true, the app accepts requests only from the AzureActiveDirectory service tag (Entra provisioning) and denies everything else, including your own test calls.')
param restrictToEntraServiceTag bool = false

@description('Address ranges in CIDR form (e.g. 203.0.113.7/32) that may call the app besides Entra while restrictToEntraServiceTag is true: the machine that runs `func azure functionapp publish` (Core Tools checks the app\'s health after the upload) and any address you test from. Has no effect while restrictToEntraServiceTag is false, when every address may call.')
param allowedIpRanges array = []

@description('Replication of the storage account that holds the SCIM table: LRS is cheapest; ZRS survives a zone outage; GRS/GZRS add a copy in the paired region.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
param storageSkuName string = 'Standard_LRS'

@description('SCIM_TABLE_NAME: the Azure table that holds users and groups.')
@minLength(3)
@maxLength(63)
param tableName string = 'scim'

@description('SCIM_EVENTS_QUEUE: the Storage Queue that gets a small message (tenant and position) per committed write, so a queue-triggered function in your app wakes up without polling. A hint only: the events in the table are the truth.')
@minLength(3)
@maxLength(63)
param eventsQueueName string = 'scim-events'

@description('SCIM_TOKEN_SECRET_NAME: the Key Vault secret that holds the bearer token. The template does not create it; rotate-token does.')
@minLength(1)
@maxLength(127)
param tokenSecretName string = 'scim-bearer-token'

@description('Object ID of the admin who will run rotate-token and the tenant commands (gets Key Vault Secrets Officer on the vault and Storage Table Data Contributor on the SCIM table). Leave empty to skip.')
param adminPrincipalId string = ''

@description('Kind of principal adminPrincipalId refers to.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param adminPrincipalType string = 'User'

@description('Give the app\'s identity Key Vault Secrets Officer (create, rotate and delete tenant tokens from code running in the app) instead of only reading tokens. Off by default.')
param appManagesTenantTokens bool = false

@description('Days a deleted vault stays recoverable (7-90). Purge protection keeps the vault name reserved for this long after deletion. Set once: Key Vault takes it only when the vault is created, and a later deployment with another value fails.')
@minValue(7)
@maxValue(90)
param keyVaultRetentionInDays int = 90

@description('Days the Log Analytics workspace keeps logs.')
@minValue(30)
@maxValue(730)
param logRetentionInDays int = 30

@description('SCIM_MANAGE_ENTRA_ISSUER: the issuer of the Entra ID access tokens the management API (/manage/v1) accepts, https://login.microsoftonline.com/<tenant id>/v2.0. Empty: API keys only.')
param manageEntraIssuer string = ''

@description('SCIM_MANAGE_ENTRA_AUDIENCE: the Application ID URI (or client id) of the management API\'s app registration, the audience its tokens carry. Empty: API keys only.')
param manageEntraAudience string = ''

@description('Extra tags applied to every resource.')
param tags object = {}

var prefix = toLower(namePrefix)
var suffix = uniqueString(resourceGroup().id, environmentName, prefix)
var allTags = union(tags, {
  'azd-env-name': environmentName
  product: 'scim-service-provider'
})

var names = {
  functionApp: 'func-${prefix}-${suffix}'
  plan: 'plan-${prefix}-${suffix}'
  storage: take('st${replace(prefix, '-', '')}${suffix}', 24)
  keyVault: 'kv-${prefix}-${take(suffix, 10)}'
  workspace: 'log-${prefix}-${suffix}'
  appInsights: 'appi-${prefix}-${suffix}'
  deploymentContainer: 'app-package'
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    location: location
    tags: allTags
    workspaceName: names.workspace
    appInsightsName: names.appInsights
    retentionInDays: logRetentionInDays
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    location: location
    tags: allTags
    name: names.storage
    skuName: storageSkuName
    tableName: tableName
    deploymentContainerName: names.deploymentContainer
    eventsQueueName: eventsQueueName
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    location: location
    tags: allTags
    name: names.keyVault
    softDeleteRetentionInDays: keyVaultRetentionInDays
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  params: {
    location: location
    tags: allTags
    name: names.functionApp
    planName: names.plan
    pythonVersion: '3.11'
    alwaysReadyInstances: alwaysReadyInstances
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    restrictToEntraServiceTag: restrictToEntraServiceTag
    allowedIpRanges: allowedIpRanges
    storageAccountName: storage.outputs.name
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    appInsightsName: monitoring.outputs.appInsightsName
    tablesEndpoint: storage.outputs.tableEndpoint
    tableName: tableName
    eventsQueueName: storage.outputs.eventsQueueName
    queuesEndpoint: storage.outputs.queueEndpoint
    keyVaultUrl: keyVault.outputs.uri
    manageEntraIssuer: manageEntraIssuer
    manageEntraAudience: manageEntraAudience
    tokenSecretName: tokenSecretName
  }
}

module storageRoles 'modules/storage-roles.bicep' = {
  name: 'storage-roles'
  params: {
    storageAccountName: storage.outputs.name
    principalId: functionApp.outputs.principalId
    eventsQueueName: storage.outputs.eventsQueueName
    tableName: storage.outputs.tableName
    activityTableName: storage.outputs.activityTableName
    adminPrincipalId: adminPrincipalId
    adminPrincipalType: adminPrincipalType
  }
}

module diagnostics 'modules/diagnostics.bicep' = {
  name: 'diagnostics'
  params: {
    storageAccountName: storage.outputs.name
    vaultName: keyVault.outputs.name
    workspaceId: monitoring.outputs.workspaceId
  }
}

module keyVaultRoles 'modules/keyvault-roles.bicep' = {
  name: 'keyvault-roles'
  params: {
    vaultName: keyVault.outputs.name
    appPrincipalId: functionApp.outputs.principalId
    appManagesTenantTokens: appManagesTenantTokens
    adminPrincipalId: adminPrincipalId
    adminPrincipalType: adminPrincipalType
  }
}

module monitoringRoles 'modules/monitoring-roles.bicep' = {
  name: 'monitoring-roles'
  params: {
    appInsightsName: monitoring.outputs.appInsightsName
    principalId: functionApp.outputs.principalId
  }
}

var tenantUrl = 'https://${functionApp.outputs.defaultHostName}/scim/v2'

module tenantUrlSecret 'modules/tenant-url-secret.bicep' = {
  name: 'tenant-url-secret'
  params: {
    vaultName: keyVault.outputs.name
    tenantUrl: tenantUrl
  }
}

@description('Name of the function app: func azure functionapp publish <this> --python')
output FUNCTION_APP_NAME string = functionApp.outputs.name

@description('Tenant URL to paste into the Entra provisioning settings.')
output SCIM_TENANT_URL string = tenantUrl

@description('Vault URL for rotate-token and show-endpoint (--vault-url).')
output SCIM_KEYVAULT_URL string = keyVault.outputs.uri

@description('Storage account holding the runtime state and the SCIM table.')
output STORAGE_ACCOUNT_NAME string = storage.outputs.name

@description('SCIM_TABLES_ENDPOINT of the table the reader library and the admin command read.')
output SCIM_TABLES_ENDPOINT string = 'https://${storage.outputs.name}.table.${environment().suffixes.storage}'

@description('Base URL of the management API (tenants, tokens, directory, events).')
output SCIM_MANAGE_URL string = 'https://${functionApp.outputs.defaultHostName}/manage/v1'
