// Preloaded into Azurite by `python -m bench --keyed-azurite` and by the 100,000-member
// group test (never by `make run` or the rest of the suite).
// Azurite finds an entity with LokiJS findOne({PartitionKey, RowKey}); LokiJS narrows by the
// first key's index, so every point read, insert, update and delete scans the whole
// partition. Asking for RowKey first uses the RowKey index instead; the result is the same
// entity, found the way Azure Table Storage finds it: by key.
"use strict";
const path = require("path");
const lokiPath = require.resolve("lokijs", {
  paths: [path.join(process.env.AZURITE_NODE_MODULES || "", "azurite")],
});
const Collection = require(lokiPath).Collection;
const findOne = Collection.prototype.findOne;
Collection.prototype.findOne = function (query) {
  if (query && Object.keys(query).length === 2 && "PartitionKey" in query && "RowKey" in query) {
    query = { RowKey: query.RowKey, PartitionKey: query.PartitionKey };
  }
  return findOne.call(this, query);
};
