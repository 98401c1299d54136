// The backend behind a store (src/backend/mod.rs): the Rust pool for a connection string,
// the JS driver (lib/driver.cjs) for a client object, which joins its client's hub.
"use strict";

const { NativeBackend } = require("./binding.cjs");
const { hubFor } = require("./client-hub.cjs");
const { adapt, sender } = require("./driver.cjs");
const { describe, invalid, isMissing, missingClient } = require("./options.cjs");
const { storeError } = require("./errors.cjs");

/** A JS client's backend → its client's hub (lib/client-hub.cjs) and its place there. */
const hubOf = new WeakMap();

function backendFor(client, options) {
  if (isMissing(client)) throw missingClient();
  if (client instanceof URL) client = client.href;
  if (typeof client === "string") return NativeBackend.connect(client, options);
  if (client !== null && typeof client === "object" && typeof client.query === "function") {
    if (options?.replicaUrl !== undefined && options?.replicaUrl !== null) {
      throw storeError(
        "INVALID_OPTION",
        'option "replicaUrl" needs a connection string as the store\'s client (the Rust pool reads the ' +
          "replica); with a JS client every read goes through that client",
      );
    }
    const hub = hubFor(client, sender(client, options?.queryTimeoutMs ?? 30_000));
    const backend = NativeBackend.fromQuery(
      (settle, timeoutMs) => adapt(client, settle, timeoutMs),
      options,
      hub.number,
    );
    hubOf.set(backend, { hub, token: hub.add(backend, options) });
    return backend;
  }
  throw invalid(
    "client must be a PostgreSQL connection string or an object with a query(sql, params) " +
      "method (a pg.Pool or pg.Client, wrapPostgresJs(sql), wrapNeon(sql)), got " +
      describe(client),
  );
}

module.exports = { backendFor, hubOf };
