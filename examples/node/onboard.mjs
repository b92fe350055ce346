// Onboard a customer over the management API with Node 20's fetch, no SDK:
// create a tenant, list its users, then follow its events.
//   SCIM_MANAGE_URL=http://127.0.0.1:7071/manage/v1 SCIM_MANAGE_KEY=smk_... node onboard.mjs acme "Acme Corp"
const base = process.env.SCIM_MANAGE_URL ?? "http://127.0.0.1:7071/manage/v1";
const key = process.env.SCIM_MANAGE_KEY;
const [tenantId, name = tenantId, rounds = "1"] = process.argv.slice(2);
if (!key || !tenantId) {
  console.error("usage: SCIM_MANAGE_KEY=smk_... node onboard.mjs <tenant-id> [name] [wait-rounds]");
  process.exit(2);
}

async function call(method, path, body, headers = {}) {
  const response = await fetch(base + path, {
    method,
    headers: {
      Authorization: `Bearer ${key}`,
      ...(body ? { "Content-Type": "application/json" } : {}),
      ...headers,
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const document = await response.json();
  if (!response.ok) {
    // RFC 9457: `type` is stable, `detail` says what to do.
    throw new Error(`${response.status} ${document.type}: ${document.detail}`);
  }
  return document;
}

// 1. Create the tenant. The Idempotency-Key makes a retry safe: it answers the same
//    tenant and token instead of a second one.
const created = await call("POST", "/tenants", { id: tenantId, name },
  { "Idempotency-Key": `onboard-${tenantId}` });
console.log(JSON.stringify({ tenantUrl: created.tenantUrl, tokenShown: created.token.length > 0 }));

// 2. List its users, a page at a time.
let next = null;
let users = 0;
do {
  const page = await call("GET", `/tenants/${tenantId}/users?limit=100` +
    (next ? `&next=${encodeURIComponent(next)}` : ""));
  users += page.items.length;
  next = page.next;
} while (next);
console.log(JSON.stringify({ users }));

// 3. Follow its events: long-poll up to 20 s per request, keep the cursor.
let after = "0";
for (let round = 0; round < Number(rounds); round++) {
  const page = await call("GET", `/tenants/${tenantId}/events?after=${after}&wait=20`);
  for (const event of page.events) {
    console.log(JSON.stringify({ event: event.type, position: event.position }));
  }
  after = page.next;
}
