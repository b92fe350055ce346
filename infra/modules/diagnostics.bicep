// Audit logs to the Log Analytics workspace: who read, wrote or deleted what, and with
// which identity. Key Vault sends AuditEvent (every secret read, set and delete: the tenant
// tokens); the table, queue and blob services send StorageRead, StorageWrite and
// StorageDelete (the SCIM data, the events queue, the host's and the deployment's blobs).
// Storage diagnostic settings attach to each service, not to the account: the account
// itself has only metrics.

@description('Name of the existing storage account.')
param storageAccountName string

@description('Name of the existing Key Vault.')
param vaultName string

@description('Resource ID of the Log Analytics workspace that receives the logs.')
param workspaceId string

var storageAuditLogs = [
  {
    category: 'StorageRead'
    enabled: true
  }
  {
    category: 'StorageWrite'
    enabled: true
  }
  {
    category: 'StorageDelete'
    enabled: true
  }
]

resource account 'Microsoft.Storage/storageAccounts@2024-01-01' existing = {
  name: storageAccountName
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2024-01-01' existing = {
  parent: account
  name: 'default'
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2024-01-01' existing = {
  parent: account
  name: 'default'
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2024-01-01' existing = {
  parent: account
  name: 'default'
}

resource vault 'Microsoft.KeyVault/vaults@2024-11-01' existing = {
  name: vaultName
}

resource vaultAudit 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'audit-to-workspace'
  scope: vault
  properties: {
    workspaceId: workspaceId
    // the resource-specific table AZKVAuditLogs rather than the shared AzureDiagnostics
    logAnalyticsDestinationType: 'Dedicated'
    logs: [
      {
        category: 'AuditEvent'
        enabled: true
      }
    ]
  }
}

resource tableAudit 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'audit-to-workspace'
  scope: tableService
  properties: {
    workspaceId: workspaceId
    logs: storageAuditLogs
  }
}

resource queueAudit 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'audit-to-workspace'
  scope: queueService
  properties: {
    workspaceId: workspaceId
    logs: storageAuditLogs
  }
}

resource blobAudit 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'audit-to-workspace'
  scope: blobService
  properties: {
    workspaceId: workspaceId
    logs: storageAuditLogs
  }
}
