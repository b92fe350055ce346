// Preloaded into Azurite by the paging suite (bench/paging.py), after
// scripts/azurite_keyed_lookups.js. Azurite answers every query by running its filter over
// every entity of the table and sorting the matches, so a page costs Azurite the table, not
// the page. A query of one partition's RowKey range (the store's only kind of range query)
// is answered here from LokiJS's RowKey index instead: a binary search to the range's start,
// then the rows in key order until the page is full, as Azure Table Storage serves a range.
// The answer is the same entities in the same order; any other query runs as before.
"use strict";
const path = require("path");
const base = path.join(process.env.AZURITE_NODE_MODULES || "", "azurite");
const Store = require(require.resolve(
  "azurite/dist/src/table/persistence/LokiTableMetadataStore.js", { paths: [base] })).default;

const RANGE = /^PartitionKey eq '((?:[^']|'')*)' and RowKey (ge|gt) '((?:[^']|'')*)' and RowKey lt '((?:[^']|'')*)'$/;
const unquote = (text) => text.replace(/''/g, "'");
const original = Store.prototype.queryTableEntities;

Store.prototype.queryTableEntities = async function (context, account, table, queryOptions,
                                                     nextPartitionKey, nextRowKey) {
  const match = RANGE.exec((queryOptions.filter || "").trim());
  const collection = match && this.getEntityCollection(account, table, context);
  if (!match || !collection.binaryIndices || !collection.binaryIndices.RowKey) {
    return original.apply(this, arguments);
  }
  const partition = unquote(match[1]);
  const inclusive = match[2] === "ge";
  let low = unquote(match[3]);
  const high = unquote(match[4]);
  const next = this.decodeContinuationHeader(nextRowKey);
  const nextPartition = this.decodeContinuationHeader(nextPartitionKey);
  if (nextPartition !== undefined && nextPartition !== partition) {
    return original.apply(this, arguments);
  }
  let from = inclusive;
  if (next !== undefined && next >= low) {
    low = next;
    from = true;
  }
  collection.ensureIndex("RowKey");
  const order = collection.binaryIndices.RowKey.values;
  const data = collection.data;
  let lo = 0;
  let hi = order.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const key = data[order[mid]].RowKey;
    if (key < low || (!from && key === low)) lo = mid + 1; else hi = mid;
  }
  const maxResults = this.getMaxResultsOption(queryOptions);
  const result = [];
  for (let i = lo; i < order.length && result.length <= maxResults; i++) {
    const entity = data[order[i]];
    if (entity.RowKey >= high) break;
    if (entity.PartitionKey === partition) result.push(entity);
  }
  const response = this.adjustQueryResultforTop(result, maxResults);
  return [result, response.nextPartitionKeyResponse, response.nextRowKeyResponse];
};
