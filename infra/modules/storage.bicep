// One storage account serves four purposes:
//   * the Functions host's own state (AzureWebJobsStorage, identity-based),
//   * the Flex Consumption deployment container the published package is uploaded to,
//   * the SCIM table holding users and groups,
//   * the events queue that gets a nudge per committed write (SCIM_EVENTS_QUEUE).
// Shared-key (account key and SAS) access is off: every caller authenticates with Entra ID.

@description('Azure region for the storage account.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Storage account name: 3-24 lowercase letters and digits, globally unique.')
@minLength(3)
@maxLength(24)
param name string

@description('Replication of the storage account.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
param skuName string

@description('Name of the table that holds the SCIM users and groups.')
param tableName string

@description('Name of the blob container Flex Consumption deploys the app package from.')
param deploymentContainerName string

@description('Name of the queue that gets a nudge (tenant and position) per committed write.')
@minLength(3)
@maxLength(63)
param eventsQueueName string

resource account 'Microsoft.Storage/storageAccounts@2024-01-01' = {
  // checkov:skip=CKV_AZURE_35: the Flex Consumption app has no VNet integration here, so it reaches storage over the public endpoint; shared keys are off and every call needs an Entra ID token
  // checkov:skip=CKV_AZURE_59: same reason as CKV_AZURE_35; closing the public endpoint needs VNet integration and private endpoints, which this template does not provision
  // checkov:skip=CKV_AZURE_206: geo-replication is a choice, not a default; storageSkuName selects ZRS, GRS or GZRS, and a lost table is rebuilt by Entra re-provisioning
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      services: {
        blob: {
          enabled: true
        }
        file: {
          enabled: true
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2024-01-01' = {
  parent: account
  name: 'default'
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2024-01-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2024-01-01' = {
  parent: account
  name: 'default'
}

// The app also creates the table on first use; creating it here means the first
// Entra request never pays for (or races on) table creation.
resource scimTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2024-01-01' = {
  parent: tableService
  name: tableName
}

// The activity log's own table (<SCIM_TABLE_NAME>activity, cut to 63 characters as the app
// cuts it), apart from the SCIM table so that logging never takes a tenant's partition
// throughput; created here because the app's role is scoped to each table.
resource activityTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2024-01-01' = {
  parent: tableService
  name: '${take(tableName, 63 - length('activity'))}activity'
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2024-01-01' = {
  parent: account
  name: 'default'
}

// The app would create it on first use too, but its identity may only send to it
// (Storage Queue Data Message Sender on this queue), so the template creates it.
resource eventsQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2024-01-01' = {
  parent: queueService
  name: eventsQueueName
}

var tableEndpoint = account.properties.primaryEndpoints.table
var queueEndpoint = account.properties.primaryEndpoints.queue
var blobEndpoint = account.properties.primaryEndpoints.blob

output name string = account.name
output id string = account.id
@description('Table endpoint without the trailing slash, e.g. https://<account>.table.core.windows.net')
output tableEndpoint string = endsWith(tableEndpoint, '/') ? substring(tableEndpoint, 0, length(tableEndpoint) - 1) : tableEndpoint
@description('Queue endpoint without the trailing slash, e.g. https://<account>.queue.core.windows.net')
output queueEndpoint string = endsWith(queueEndpoint, '/') ? substring(queueEndpoint, 0, length(queueEndpoint) - 1) : queueEndpoint
@description('Name of the SCIM table (SCIM_TABLE_NAME), once created: the scope of the app\'s table role.')
output tableName string = scimTable.name
@description('Name of the activity log\'s table, once created: the scope of the app\'s second table role.')
output activityTableName string = activityTable.name
@description('Name of the events queue (SCIM_EVENTS_QUEUE).')
output eventsQueueName string = eventsQueue.name
@description('URL of the Flex Consumption deployment container.')
output deploymentContainerUrl string = '${blobEndpoint}${deploymentContainer.name}'
