// The client against real EdgeKV regions: a two-region cluster (wnam, enam) whose link delays
// every write by 2 s, so enam is stale for 2 s after each write made in wnam. Needs the edgekv
// binary: EDGEKV_BIN, or target/debug/edgekv from the repository root.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { setTimeout as pause } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";

import { EdgeKVNamespace } from "../index.js";

const REPO = fileURLToPath(new URL("../../../", import.meta.url));
const BIN = process.env.EDGEKV_BIN || `${REPO}target/debug/edgekv`;
const DELAY_MS = 2000;
const STARTUP_MS = 60_000;
// A region keeps serving what a binding read found, even "not found", for the read's cacheTtl
// (30 s at least): a value replicated after such a read shows once that runs out.
const CACHE_TTL_S = 30;
const CONVERGED_MS = DELAY_MS + CACHE_TTL_S * 1000 + 15_000;

let cluster;
let namespace;
let wnam;
let enam;

before(async () => {
  cluster = await startCluster();
  namespace = await createNamespace(cluster);
  wnam = region("wnam");
  enam = region("enam");
});

after(() => cluster?.stop());

function region(name, options = {}) {
  return new EdgeKVNamespace({
    url: cluster.regions[name].binding,
    namespaceId: namespace.id,
    token: cluster.token,
    ...options,
  });
}

// ---------------------------------------------------------------------------------------------
// The cluster

async function startCluster() {
  if (!existsSync(BIN)) {
    throw new Error(
      `edgekv binary not found at ${BIN}: run \`cargo build -p edgekv-cli --bin edgekv\` or set EDGEKV_BIN`,
    );
  }
  // Settings also come from EDGEKV_* variables; a developer's own must not change this cluster.
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("EDGEKV_")));
  const args = ["cluster", "--regions", "wnam,enam", "--in-memory", "--delay", `${DELAY_MS}ms`];
  args.push("--port", "0", "--binding-port", "0");
  const child = spawn(BIN, args, { env, stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (chunk) => {
    // The tail is what explains a failed start; the rest is log noise.
    stderr = (stderr + chunk).slice(-20_000);
  });
  let stopping = false;
  const exited = new Promise((resolve) =>
    child.once("exit", (code, signal) => {
      // Every later test fails with ECONNREFUSED; this says why.
      if (!stopping) {
        console.error(`edgekv cluster exited (code ${code}, signal ${signal}); stderr (tail):\n${stderr}`);
      }
      resolve({ code, signal });
    }),
  );
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    stopping = true;
    child.kill("SIGTERM");
    const stopped = await Promise.race([exited, pause(10_000, null, { ref: false })]);
    if (stopped === null) {
      child.kill("SIGKILL");
      await exited;
    }
  };
  try {
    const table = await Promise.race([
      readTable(child.stdout, ["wnam", "enam"]),
      exited.then(({ code, signal }) => {
        throw new Error(`edgekv cluster exited (code ${code}, signal ${signal}) before printing its regions`);
      }),
      // Unreferenced, so the pending deadline does not keep the test process alive after a start.
      pause(STARTUP_MS, null, { ref: false }).then(() => {
        throw new Error(`edgekv cluster printed no region table within ${STARTUP_MS / 1000} s`);
      }),
    ]);
    const cluster = { ...table, stop };
    await Promise.all(Object.values(cluster.regions).map((region) => waitHealthy(region.url)));
    return cluster;
  } catch (error) {
    await stop();
    error.message += `\n${args.join(" ")}\nstderr (tail):\n${stderr}`;
    throw error;
  }
}

// Reads the table `edgekv cluster` prints (REGION URL GRPC BINDING TOKEN, one line per region)
// by column name, so added columns do not break it.
function readTable(stdout, names) {
  return new Promise((resolve, reject) => {
    let text = "";
    let columns;
    const regions = {};
    const onData = (chunk) => {
      text += chunk;
      const lines = text.split("\n");
      text = lines.pop();
      for (const line of lines) {
        const fields = line.trim().split(/\s+/);
        if (fields[0] === "REGION") {
          columns = fields;
        } else if (columns && names.includes(fields[0])) {
          const row = Object.fromEntries(columns.map((column, i) => [column, fields[i]]));
          if (!row.BINDING) return fail(new Error(`edgekv cluster printed no BINDING column: ${line}`));
          regions[row.REGION] = { url: row.URL, binding: row.BINDING, token: row.TOKEN };
        }
      }
      if (names.every((name) => regions[name])) {
        // Still drained, never closed: a cluster writing to a closed pipe would die of it.
        stdout.off("data", onData).resume();
        resolve({ regions, token: regions[names[0]].token });
      }
    };
    const fail = (error) => {
      stdout.off("data", onData).resume();
      reject(error);
    };
    stdout.setEncoding("utf8").on("data", onData);
  });
}

async function waitHealthy(apiUrl) {
  const health = `${new URL(apiUrl).origin}/healthz`;
  await eventually(
    `${health} answers 200`,
    // Refused connections are expected until the region listens.
    () => fetch(health).then((response) => response.status === 200, () => false),
    20_000,
  );
}

async function rest(cluster, region, method, path, body) {
  const response = await fetch(`${cluster.regions[region].url}${path}`, {
    method,
    headers: { authorization: `Bearer ${cluster.token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

// A fresh account and namespace, created in wnam and replicated to enam before any test runs.
async function createNamespace(cluster) {
  const account = randomBytes(16).toString("hex");
  const path = `/accounts/${account}/storage/kv/namespaces`;
  const created = await rest(cluster, "wnam", "POST", path, { title: "js-client-tests" });
  assert.equal(created.status, 200, JSON.stringify(created.body));
  const { id } = created.body.result;
  await eventually(
    "the namespace reaches enam",
    async () => (await rest(cluster, "enam", "GET", `${path}/${id}`)).status === 200,
  );
  return { account, id };
}

// Polls `check` until it returns something other than false, null or undefined, and returns
// that; fails with `what` and the last result after `timeoutMs`. An error thrown by `check`
// fails at once.
async function eventually(what, check, timeoutMs = DELAY_MS + 15_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const last = await check();
    if (last !== false && last !== null && last !== undefined) return last;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}; last: ${last}`);
    }
    await pause(100);
  }
}

// A key takes one write a second: a test that writes a key again retries until it may.
function onceAllowed(write) {
  return eventually("the key may be written again", async () => {
    try {
      await write();
      return true;
    } catch (error) {
      if (error.message.endsWith(" 429 Too Many Requests")) return false;
      throw error;
    }
  });
}

// A key of its own for each use, so a test never sees another's writes or cached reads.
let keyCount = 0;
function freshKey(label) {
  keyCount += 1;
  return `${label}-${keyCount}`;
}

// A fetch that keeps each response's headers, to see what the client does not surface.
function recordingFetch() {
  const headers = [];
  const record = async (url, init) => {
    const response = await fetch(url, init);
    headers.push(response.headers);
    return response;
  };
  return { fetch: record, headers };
}

async function text(stream) {
  return new Response(stream).text();
}

function streamOf(...chunks) {
  return new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(new TextEncoder().encode(chunk));
      controller.close();
    },
  });
}

const nowS = () => Math.floor(Date.now() / 1000);

// ---------------------------------------------------------------------------------------------

describe("consistency", () => {
  test("a region reads its own writes at once", async () => {
    const key = freshKey("ryw");
    await wnam.put(key, "first");
    assert.equal(await wnam.get(key), "first");
    // The read cached "first"; the region's own next write must replace it.
    await onceAllowed(() => wnam.put(key, "second"));
    assert.equal(await wnam.get(key), "second");
    await onceAllowed(() => wnam.delete(key));
    assert.equal(await wnam.get(key), null);
  });

  test("another region misses a write at first, then serves it", async () => {
    const key = freshKey("stale");
    await wnam.put(key, "v1", { metadata: { n: 1 } });
    const stale = await enam.getWithMetadata(key, { cacheTtl: CACHE_TTL_S });
    assert.equal(stale.value, null);
    assert.equal(stale.metadata, null);
    const fresh = await eventually(
      "enam serves the write",
      async () => {
        const read = await enam.getWithMetadata(key, { cacheTtl: CACHE_TTL_S });
        return read.value === null ? null : read;
      },
      CONVERGED_MS,
    );
    assert.equal(fresh.value, "v1");
    assert.deepEqual(fresh.metadata, { n: 1 });
  });

  test("another region serves the old value after an overwrite", async () => {
    const key = freshKey("overwrite");
    await wnam.put(key, "old");
    await untilInStore("enam", key, "old");
    await wnam.put(key, "new");
    assert.equal(await enam.get(key, { cacheTtl: CACHE_TTL_S }), "old");
    // Once "new" is in enam's store, enam's binding still serves the copy it cached above.
    await untilInStore("enam", key, "new");
    const cached = await enam.getWithMetadata(key, { cacheTtl: CACHE_TTL_S });
    assert.deepEqual([cached.value, cached.cacheStatus], ["old", "HIT"]);
    assert.equal(await wnam.get(key), "new");
  });

  test("a key first read after replication is fresh", async () => {
    const key = freshKey("unread");
    await wnam.put(key, "hello");
    await untilInStore("enam", key, "hello");
    assert.deepEqual(await enam.getWithMetadata(key), { value: "hello", metadata: null, cacheStatus: "MISS" });
  });
});

// Waits until `region`'s store holds `value` for `key`, as its REST API tells: that API reads
// the store without the edge cache, so it sees replication as it lands.
async function untilInStore(name, key, value) {
  const values = `/accounts/${namespace.account}/storage/kv/namespaces/${namespace.id}/values`;
  const url = `${cluster.regions[name].url}${values}/${encodeURIComponent(key)}`;
  await eventually(`${name}'s store holds ${JSON.stringify(value)} for ${key}`, async () => {
    const response = await fetch(url, { headers: { authorization: `Bearer ${cluster.token}` } });
    return response.status === 200 && (await response.text()) === value;
  });
}

describe("values", () => {
  test("reads a value as text, json, arrayBuffer and stream", async () => {
    const key = freshKey("types");
    await wnam.put(key, '{"a":[1,"ü"]}');
    assert.equal(await wnam.get(key), '{"a":[1,"ü"]}');
    assert.equal(await wnam.get(key, "text"), '{"a":[1,"ü"]}');
    assert.deepEqual(await wnam.get(key, "json"), { a: [1, "ü"] });
    assert.deepEqual(await wnam.get(key, { type: "json" }), { a: [1, "ü"] });
    assert.equal(Buffer.from(await wnam.get(key, "arrayBuffer")).toString(), '{"a":[1,"ü"]}');
    assert.equal(await text(await wnam.get(key, { type: "stream" })), '{"a":[1,"ü"]}');
  });

  test("stores ArrayBuffers, views and streams byte for byte", async () => {
    const bytes = new Uint8Array(256).map((_, i) => i);
    const cases = [
      [bytes.buffer, bytes],
      [bytes.subarray(250), bytes.subarray(250)],
      [new DataView(bytes.buffer, 10, 3), bytes.subarray(10, 13)],
      [streamOf("one, ", "two, ", "three"), new TextEncoder().encode("one, two, three")],
    ];
    for (const [value, expected] of cases) {
      const key = freshKey("binary");
      await wnam.put(key, value);
      assert.deepEqual(new Uint8Array(await wnam.get(key, "arrayBuffer")), expected);
    }
  });

  test("an empty value is a value, not a missing key", async () => {
    const key = freshKey("empty");
    await wnam.put(key, "");
    assert.equal(await wnam.get(key), "");
    assert.equal((await wnam.get(key, "arrayBuffer")).byteLength, 0);
  });

  test("a missing key is null for every type", async () => {
    const key = freshKey("missing");
    for (const type of ["text", "json", "arrayBuffer", "stream"]) assert.equal(await wnam.get(key, type), null);
    const read = await wnam.getWithMetadata(key);
    assert.deepEqual([read.value, read.metadata], [null, null]);
  });

  test("keys with /, %, ?, spaces and non-ASCII round-trip through get, list and delete", async () => {
    const prefix = `${freshKey("odd")}/`;
    const odd = ["a/b", "100%", "what?", "with space", "ключ", "🤓", "a+b&c=d", "#x", "..."];
    const names = odd.map((k) => prefix + k);
    for (const name of names) await wnam.put(name, `value of ${name}`);
    for (const name of names) assert.equal(await wnam.get(name), `value of ${name}`);
    const listed = await wnam.list({ prefix });
    assert.deepEqual(listed.keys.map((k) => k.name), [...names].sort(byUtf8));
    for (const name of names) await onceAllowed(() => wnam.delete(name));
    for (const name of names) assert.equal(await wnam.get(name), null);
  });

  test("a key of exactly 512 UTF-8 bytes is accepted", async () => {
    const key = `${freshKey("long")}-`.padEnd(512, "k");
    await wnam.put(key, "v");
    assert.equal(await wnam.get(key), "v");
  });
});

// Keys are listed in the order of their UTF-8 bytes.
function byUtf8(a, b) {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

describe("metadata and expiration", () => {
  test("metadata round-trips through getWithMetadata, list and bulk get", async () => {
    const key = freshKey("meta");
    const metadata = { n: 1.5, s: "é 🤓 \" \\ \t", list: [true, null, { deep: "ключ" }] };
    await wnam.put(key, "v", { metadata });
    const read = await wnam.getWithMetadata(key);
    assert.equal(read.value, "v");
    assert.deepEqual(read.metadata, metadata);
    assert.deepEqual((await wnam.list({ prefix: key })).keys, [{ name: key, metadata }]);
    assert.deepEqual(await wnam.getWithMetadata([key]), new Map([[key, { value: "v", metadata }]]));
  });

  test("metadata with a DEL character reaches getWithMetadata", async () => {
    // The stored compact JSON holds U+007F raw, which no header value may carry: the region
    // sends it escaped.
    const key = freshKey("del-meta");
    await wnam.put(key, "v", { metadata: { s: "a\u007fb" } });
    assert.deepEqual((await wnam.getWithMetadata(key)).metadata, { s: "a\u007fb" });
  });

  test("a key without metadata reports none", async () => {
    const key = freshKey("nometa");
    await wnam.put(key, "v");
    assert.equal((await wnam.getWithMetadata(key)).metadata, null);
    assert.deepEqual((await wnam.list({ prefix: key })).keys, [{ name: key }]);
  });

  test("expiration is reported by list and CF-Expiration", async () => {
    const key = freshKey("exp");
    const expiration = nowS() + 3600;
    await wnam.put(key, "v", { expiration });
    assert.deepEqual((await wnam.list({ prefix: key })).keys, [{ name: key, expiration }]);
    const recorder = recordingFetch();
    assert.equal(await region("wnam", { fetch: recorder.fetch }).get(key), "v");
    assert.equal(recorder.headers[0].get("cf-expiration"), String(expiration));
  });

  test("expirationTtl counts from the write", async () => {
    const key = freshKey("ttl");
    const before = nowS();
    await wnam.put(key, "v", { expirationTtl: 600, metadata: { m: 1 } });
    const after = nowS();
    const [listed] = (await wnam.list({ prefix: key })).keys;
    const { expiration } = listed;
    assert.ok(expiration >= before + 600 && expiration <= after + 600, `expiration ${expiration}`);
    assert.deepEqual(listed.metadata, { m: 1 });
    const recorder = recordingFetch();
    await region("wnam", { fetch: recorder.fetch }).get(key);
    assert.equal(recorder.headers[0].get("cf-expiration"), String(listed.expiration));
  });
});

describe("cacheTtl", () => {
  test("is accepted by get, getWithMetadata and bulk get, which report the cache status", async () => {
    const key = freshKey("cachettl");
    await wnam.put(key, '"v"');
    assert.equal(await wnam.get(key, { cacheTtl: 30 }), '"v"');
    const read = await wnam.getWithMetadata(key, { type: "json", cacheTtl: 3600 });
    assert.equal(read.value, "v");
    assert.ok(["HIT", "MISS"].includes(read.cacheStatus), `cacheStatus ${read.cacheStatus}`);
    assert.deepEqual(await wnam.get([key], { cacheTtl: 60 }), new Map([[key, '"v"']]));
    assert.deepEqual(await wnam.get([key], { type: "json", cacheTtl: 60 }), new Map([[key, "v"]]));
  });

  test("a second read of a missing key is served from the cache", async () => {
    const key = freshKey("cached-miss");
    assert.equal((await enam.getWithMetadata(key, { cacheTtl: 30 })).cacheStatus, "MISS");
    assert.deepEqual(await enam.getWithMetadata(key, { cacheTtl: 30 }), {
      value: null,
      metadata: null,
      cacheStatus: "HIT",
    });
  });
});

describe("list", () => {
  test("pages through a prefix with limit and cursor", async () => {
    const prefix = `${freshKey("page")}/`;
    const names = ["a", "b", "c", "d", "e"].map((k) => prefix + k);
    for (const name of names) await wnam.put(name, "v");
    await wnam.put(`${prefix.slice(0, -1)}-outside`, "v");

    const seen = [];
    let cursor;
    for (let page = 0; ; page++) {
      const result = await wnam.list({ prefix, limit: 2, cursor });
      assert.ok(page < 3, "more pages than keys");
      assert.ok(result.keys.length <= 2);
      assert.ok(["HIT", "MISS"].includes(result.cacheStatus), `cacheStatus ${result.cacheStatus}`);
      seen.push(...result.keys.map((k) => k.name));
      if (result.list_complete) {
        assert.equal(result.cursor, undefined);
        break;
      }
      assert.equal(typeof result.cursor, "string");
      cursor = result.cursor;
    }
    assert.deepEqual(seen, names);

    const all = await wnam.list({ prefix });
    assert.equal(all.list_complete, true);
    assert.deepEqual(all.keys.map((k) => k.name), names);
  });

  test("without options lists the namespace from its first key", async () => {
    const result = await wnam.list();
    assert.ok(result.keys.length > 0);
    assert.deepEqual(result.keys.map((k) => k.name), result.keys.map((k) => k.name).sort(byUtf8));
  });
});

describe("bulk get", () => {
  test("returns a Map of each key's value, null when missing, as text or json", async () => {
    const [a, b, missing] = [freshKey("bulk-a"), freshKey("bulk-b"), freshKey("bulk-missing")];
    await wnam.put(a, '{"x":1}', { metadata: { tag: "a" } });
    await wnam.put(b, "[2]");
    assert.deepEqual(
      await wnam.get([a, b, missing]),
      new Map([
        [a, '{"x":1}'],
        [b, "[2]"],
        [missing, null],
      ]),
    );
    assert.deepEqual(
      await wnam.get([a, b], "json"),
      new Map([
        [a, { x: 1 }],
        [b, [2]],
      ]),
    );
    assert.deepEqual(
      await wnam.getWithMetadata([a, b, missing]),
      new Map([
        [a, { value: '{"x":1}', metadata: { tag: "a" } }],
        [b, { value: "[2]", metadata: null }],
        [missing, null],
      ]),
    );
    assert.deepEqual(
      await wnam.getWithMetadata([a], { type: "json" }),
      new Map([[a, { value: { x: 1 }, metadata: { tag: "a" } }]]),
    );
  });

  test("refuses types other than text and json, and non-JSON values asked as json", async () => {
    const key = freshKey("bulk-text");
    await wnam.put(key, "not json");
    await assert.rejects(wnam.get([key], "arrayBuffer"), {
      message: 'KV GET_BULK failed: 400 "arrayBuffer" is not a valid type. Use "json" or "text"',
    });
    await assert.rejects(wnam.get([key], "json"), {
      message: "KV GET_BULK failed: 400 At least one of the requested keys corresponds to a non-json value",
    });
  });
});

describe("errors", () => {
  test("a value over 25 MiB", async () => {
    await assert.rejects(wnam.put(freshKey("huge"), "x".repeat(25 * 1024 * 1024 + 1)), {
      message: "KV PUT failed: 413 Value length of 26214401 exceeds limit of 26214400.",
    });
  });

  test("metadata over 1024 bytes", async () => {
    const metadata = { pad: "m".repeat(1020) };
    await assert.rejects(wnam.put(freshKey("bigmeta"), "v", { metadata }), {
      message: `KV PUT failed: 413 Metadata length of ${JSON.stringify(metadata).length} exceeds limit of 1024.`,
    });
  });

  test("expirationTtl under 60 s, and an expiration in the past", async () => {
    await assert.rejects(wnam.put(freshKey("ttl30"), "v", { expirationTtl: 30 }), {
      message: "KV PUT failed: 400 Invalid expiration_ttl of 30. Expiration TTL must be at least 60.",
    });
    await assert.rejects(wnam.put(freshKey("past"), "v", { expiration: 1000 }), {
      message:
        "KV PUT failed: 400 Invalid expiration of 1000. Please specify integer greater than the " +
        "current number of seconds since the UNIX epoch.",
    });
  });

  test("cacheTtl under 30 s", async () => {
    const key = freshKey("ttl10");
    const message = "400 Invalid cache_ttl of 10. Cache TTL must be at least 30.";
    await assert.rejects(wnam.get(key, { cacheTtl: 10 }), { message: `KV GET failed: ${message}` });
    await assert.rejects(wnam.getWithMetadata(key, { cacheTtl: 10 }), { message: `KV GET failed: ${message}` });
    await assert.rejects(wnam.get([key], { cacheTtl: 10 }), { message: `KV GET_BULK failed: ${message}` });
  });

  test("a key over 512 bytes fails in the client, before any request", async () => {
    const recorder = recordingFetch();
    const ns = region("wnam", { fetch: recorder.fetch });
    await assert.rejects(ns.put("k".repeat(513), "v"), {
      message: "KV PUT failed: 414 UTF-8 encoded length of 513 exceeds key length limit of 512.",
    });
    await assert.rejects(ns.get("é".repeat(300)), {
      message: "KV GET failed: 414 UTF-8 encoded length of 600 exceeds key length limit of 512.",
    });
    await assert.rejects(ns.delete(""), { name: "TypeError", message: "Key name cannot be empty." });
    assert.equal(recorder.headers.length, 0);
  });

  test("a second write to a key within a second", async () => {
    const key = freshKey("rate");
    await wnam.put(key, "first");
    await assert.rejects(wnam.put(key, "second"), { message: "KV PUT failed: 429 Too Many Requests" });
    await assert.rejects(wnam.delete(key), { message: "KV DELETE failed: 429 Too Many Requests" });
    assert.equal(await wnam.get(key), "first");
  });

  test("a bulk get of 101 keys", async () => {
    const keys = Array.from({ length: 101 }, (_, i) => `bulk-${i}`);
    await assert.rejects(wnam.get(keys), {
      message: "KV GET_BULK failed: 400 You can request a maximum of 100 keys",
    });
    await assert.rejects(wnam.get([]), {
      message: "KV GET_BULK failed: 400 You must request a minimum of 1 key",
    });
  });

  test("a token the region does not accept", async () => {
    const stranger = region("wnam", { token: "not-a-token" });
    await assert.rejects(stranger.get("k"), { message: "KV GET failed: 401 Unauthorized" });
    await assert.rejects(stranger.put("k", "v"), { message: "KV PUT failed: 401 Unauthorized" });
  });

  test("a namespace the region does not have", async () => {
    const lost = region("wnam", { namespaceId: "f".repeat(32) });
    await assert.rejects(lost.put("k", "v"), {
      message: `KV PUT failed: 400 namespace ${"f".repeat(32)} does not exist in this region`,
    });
  });
});
