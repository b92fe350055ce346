// Flex Consumption (FC1) plan and the Linux Python function app that serves /scim/v2.
// The app authenticates to storage, Key Vault and Application Insights with its
// system-assigned managed identity; no key, connection string or token is an app setting.

@description('Azure region for the plan and the app.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Name of the function app (becomes <name>.azurewebsites.net unless a unique default host name is assigned).')
param name string

@description('Name of the Flex Consumption plan.')
param planName string

@description('Python version of the Functions runtime.')
@allowed([
  '3.11'
  '3.12'
])
param pythonVersion string

@description('Always-ready instances for the http trigger group; 0 lets the app scale to zero (cold starts).')
@minValue(0)
@maxValue(20)
param alwaysReadyInstances int

@description('Memory of each instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int

@description('Upper bound on the number of instances the app scales out to.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int

@description('When true, only Entra provisioning (the AzureActiveDirectory service tag) may call the app; everything else gets 403.')
param restrictToEntraServiceTag bool

@description('Address ranges (CIDR) allowed besides Entra while restrictToEntraServiceTag is true, e.g. the publisher\'s address.')
param allowedIpRanges array

@description('Name of the storage account used by the runtime and the SCIM table.')
param storageAccountName string

@description('URL of the blob container Flex Consumption deploys the app package from.')
param deploymentContainerUrl string

@description('Name of the Application Insights component.')
param appInsightsName string

@description('Value of SCIM_TABLES_ENDPOINT: https://<account>.table.core.windows.net')
param tablesEndpoint string

@description('Value of SCIM_TABLE_NAME.')
param tableName string

@description('Value of SCIM_EVENTS_QUEUE: the queue that gets a nudge per committed write.')
param eventsQueueName string

@description('Value of SCIM_QUEUES_ENDPOINT: https://<account>.queue.core.windows.net')
param queuesEndpoint string

@description('Value of SCIM_KEYVAULT_URL: the vault URI.')
param keyVaultUrl string

@description('Value of SCIM_TOKEN_SECRET_NAME: the secret holding the bearer token.')
param tokenSecretName string

@description('Value of SCIM_MANAGE_ENTRA_ISSUER (empty: the management API takes API keys only).')
param manageEntraIssuer string

@description('Value of SCIM_MANAGE_ENTRA_AUDIENCE.')
param manageEntraAudience string

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource plan 'Microsoft.Web/serverfarms@2024-11-01' = {
  // checkov:skip=CKV_AZURE_225: zone redundancy for Flex Consumption is available only in some regions and raises the idle cost; Entra retries failed provisioning cycles
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

var entraOnlyRules = [
  {
    name: 'AllowEntraProvisioning'
    description: 'Microsoft Entra provisioning service'
    action: 'Allow'
    priority: 100
    tag: 'ServiceTag'
    ipAddress: 'AzureActiveDirectory'
  }
]

// Allow rules for the publisher and for test clients. `func azure functionapp publish` uploads
// through the scm site, then calls /admin/host/status on the main site: without a rule for its
// address the Deny below answers 403 and Core Tools reports the app as unhealthy.
var allowedAddressRules = [for (cidr, i) in allowedIpRanges: {
  name: 'AllowAddress${i + 1}'
  description: 'Allowed address range ${i + 1} (allowedIpRanges)'
  action: 'Allow'
  priority: 200 + i
  ipAddress: cidr
}]

resource site 'Microsoft.Web/sites@2024-11-01' = {
  // checkov:skip=CKV_AZURE_222: Entra provisioning calls the Tenant URL over the internet, so the app must be publicly reachable; restrictToEntraServiceTag narrows it to the AzureActiveDirectory service tag
  // checkov:skip=CKV_AZURE_17: Entra provisioning does not present a client certificate; requests are authenticated by the bearer token
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales instances on demand; alwaysReadyInstances sets the warm floor
  // checkov:skip=CKV_AZURE_213: every SCIM route requires the bearer token, so there is no anonymous path for the platform health probe to call
  // checkov:skip=CKV_AZURE_78: Flex Consumption refuses siteConfig.ftpsState (ARM error 51021); FTP is off through the ftp basicPublishingCredentialsPolicies resource below (allow: false)
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'scim' })
  kind: 'functionapp,linux'
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientAffinityEnabled: false
    publicNetworkAccess: 'Enabled'
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'SystemAssignedIdentity'
          }
        }
      }
      scaleAndConcurrency: {
        alwaysReady: alwaysReadyInstances > 0 ? [
          {
            name: 'http'
            instanceCount: alwaysReadyInstances
          }
        ] : []
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
    }
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      http20Enabled: true
      ipSecurityRestrictions: restrictToEntraServiceTag ? concat(entraOnlyRules, allowedAddressRules) : []
      ipSecurityRestrictionsDefaultAction: restrictToEntraServiceTag ? 'Deny' : 'Allow'
      // The deployment endpoint (scm) keeps its own, open rule set so that
      // `func azure functionapp publish` and `azd deploy` still work; it accepts only
      // Entra ID tokens because basic publishing credentials are disabled below.
      scmIpSecurityRestrictionsUseMain: false
      appSettings: [
        {
          name: 'AzureWebJobsStorage__accountName'
          value: storageAccountName
        }
        {
          name: 'AzureWebJobsStorage__credential'
          value: 'managedidentity'
        }
        {
          name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
          value: appInsights.properties.ConnectionString
        }
        {
          name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
          value: 'Authorization=AAD'
        }
        {
          name: 'SCIM_STORE'
          value: 'tables'
        }
        {
          name: 'SCIM_TABLES_ENDPOINT'
          value: tablesEndpoint
        }
        {
          name: 'SCIM_TABLE_NAME'
          value: tableName
        }
        {
          name: 'SCIM_EVENTS_QUEUE'
          value: eventsQueueName
        }
        {
          name: 'SCIM_QUEUES_ENDPOINT'
          value: queuesEndpoint
        }
        {
          name: 'SCIM_KEYVAULT_URL'
          value: keyVaultUrl
        }
        {
          name: 'SCIM_TOKEN_SECRET_NAME'
          value: tokenSecretName
        }
        {
          name: 'SCIM_MANAGE_ENTRA_ISSUER'
          value: manageEntraIssuer
        }
        {
          name: 'SCIM_MANAGE_ENTRA_AUDIENCE'
          value: manageEntraAudience
        }
      ]
    }
  }
}

// No FTP and no username/password deployments: publishing uses Entra ID only.
// `location` is not in the REST definition of this type, but the Web resource provider
// answers 51008 ("The parameter location has an invalid value") without it; see
// Azure/bicep-types-az#1317. infra/check.py's schema check allows exactly this gap.
resource ftpPolicy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-11-01' = {
  parent: site
  name: 'ftp'
  location: location
  properties: {
    allow: false
  }
}

resource scmPolicy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-11-01' = {
  parent: site
  name: 'scm'
  location: location
  properties: {
    allow: false
  }
}

output name string = site.name
output principalId string = site.identity.principalId
output defaultHostName string = site.properties.defaultHostName
