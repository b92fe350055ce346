// Data-plane roles on the storage account, each at the narrowest scope Azure and the
// Functions host allow (Azure accepts table- and queue-level scopes for role assignments:
// .../tableServices/default/tables/<table> and .../queueServices/default/queues/<queue>).
//
//   role                               scope             who, and why not narrower
//   Storage Blob Data Owner            storage account   the Functions host (AzureWebJobsStorage):
//                                                        it creates and leases its own containers
//                                                        (azure-webjobs-hosts, -secrets, timer
//                                                        locks), which do not exist before the
//                                                        first start, and Flex Consumption reads
//                                                        the deployment package container with
//                                                        the same identity
//   Storage Table Data Contributor     the SCIM table    the app's store (users, groups, tenants,
//                                                        feed); nothing else in the account
//   Storage Table Data Contributor     the activity      the activity log (entries, minute
//                                      table             aggregates, health), kept apart from
//                                                        the tenants' data partitions
//   Storage Queue Data Message Sender  the events queue  the app's nudges (SCIM_EVENTS_QUEUE):
//                                                        send only, no read, peek or delete
//
// No account-wide queue or table role: the app's triggers are HTTP and timer, and the host
// needs queues only for blob and queue triggers, tables only to persist its diagnostic
// events (Microsoft lists Storage Blob Data Owner alone as the host-only minimum). Adding
// such a trigger means adding Storage Queue Data Contributor on the account here. Without
// an account-wide table role the host reports that it cannot persist diagnostic events
// (AZFD0003); granting it would also open the SCIM table and every other table to the app.
// The deploying admin (optional) gets the table role on the SCIM table too, so that the
// tenant commands (`python -m scim_core.admin tenant ...`) reach the registry.

@description('Name of the existing storage account.')
param storageAccountName string

@description('Object ID of the function app\'s system-assigned identity.')
param principalId string

@description('Name of the existing events queue the app sends its nudges to.')
param eventsQueueName string

@description('Name of the existing table that holds the SCIM users and groups.')
param tableName string

@description('Name of the existing table that holds the activity log.')
param activityTableName string

@description('Object ID of the admin who runs the tenant commands; empty to skip the assignment.')
param adminPrincipalId string

@description('Kind of principal adminPrincipalId refers to.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param adminPrincipalType string

var roleIds = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageQueueDataMessageSender: 'c6a89b2d-59bc-44d0-9896-0f6e12d7b80a'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
}

resource account 'Microsoft.Storage/storageAccounts@2024-01-01' existing = {
  name: storageAccountName
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2024-01-01' existing = {
  parent: account
  name: 'default'
}

resource eventsQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2024-01-01' existing = {
  parent: queueService
  name: eventsQueueName
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2024-01-01' existing = {
  parent: account
  name: 'default'
}

resource scimTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2024-01-01' existing = {
  parent: tableService
  name: tableName
}

// Account-wide on purpose: see the table at the top (the host's own containers).
resource blobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, principalId, roleIds.storageBlobDataOwner)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageBlobDataOwner)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource eventsQueueSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(eventsQueue.id, principalId, roleIds.storageQueueDataMessageSender)
  scope: eventsQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageQueueDataMessageSender)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource tableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(scimTable.id, principalId, roleIds.storageTableDataContributor)
  scope: scimTable
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageTableDataContributor)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource activityTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2024-01-01' existing = {
  parent: tableService
  name: activityTableName
}

resource activityTableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(activityTable.id, principalId, roleIds.storageTableDataContributor)
  scope: activityTable
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageTableDataContributor)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource adminActivityTableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(adminPrincipalId)) {
  name: guid(activityTable.id, adminPrincipalId, roleIds.storageTableDataContributor)
  scope: activityTable
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageTableDataContributor)
    principalId: adminPrincipalId
    principalType: adminPrincipalType
  }
}

resource adminTableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(adminPrincipalId)) {
  name: guid(scimTable.id, adminPrincipalId, roleIds.storageTableDataContributor)
  scope: scimTable
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageTableDataContributor)
    principalId: adminPrincipalId
    principalType: adminPrincipalType
  }
}
