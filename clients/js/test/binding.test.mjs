// The client against a scripted stand-in for a region's binding listener: pins the exact
// requests it sends (paths, query strings, headers, bodies) and how it reads each answer,
// without a cluster.

import assert from "node:assert/strict";
import http from "node:http";
import { after, before, beforeEach, describe, test } from "node:test";

import { EdgeKVNamespace } from "../index.js";

const NAMESPACE = "0123456789abcdef0123456789abcdef";
const TOKEN = "test-token";

let server;
let base;
let requests;
let respond;

before(async () => {
  server = http.createServer(async (req, res) => {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const request = { method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks) };
    requests.push(request);
    const { status = 200, statusText, headers = {}, body = "" } = respond(request) ?? {};
    res.writeHead(status, statusText, headers);
    res.end(body);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${server.address().port}`;
});

after(() => new Promise((resolve) => server.close(resolve)));

beforeEach(() => {
  requests = [];
  respond = () => ({});
});

function kv(options = {}) {
  return new EdgeKVNamespace({ url: base, namespaceId: NAMESPACE, token: TOKEN, ...options });
}

function onlyRequest() {
  assert.equal(requests.length, 1, `expected one request, got ${requests.length}`);
  return requests[0];
}

// Node's http server writes header strings one byte per character, so this is how a server
// sends raw UTF-8 in a header.
function rawUtf8Header(text) {
  return Buffer.from(text).toString("latin1");
}

async function readAll(stream) {
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  return Buffer.concat(chunks);
}

function streamOf(...chunks) {
  return new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(new TextEncoder().encode(chunk));
      controller.close();
    },
  });
}

describe("requests", () => {
  test("every operation carries the token and the namespace id", async () => {
    respond = ({ url }) => ({ body: url.startsWith("/?") ? '{"keys":[],"list_complete":true}' : "{}" });
    const ns = kv();
    await ns.get("k");
    await ns.put("k", "v");
    await ns.delete("k");
    await ns.list({ prefix: "k" });
    await ns.get(["k"]);
    assert.equal(requests.length, 5);
    for (const { headers } of requests) {
      assert.equal(headers.authorization, `Bearer ${TOKEN}`);
      assert.equal(headers["edgekv-namespace"], NAMESPACE);
    }
  });

  test("each key is percent-encoded into one path segment", async () => {
    const keys = {
      plain: "/plain",
      "a/b": "/a%2Fb",
      "100%": "/100%25",
      "what?": "/what%3F",
      "with space": "/with%20space",
      "a+b&c=d": "/a%2Bb%26c%3Dd",
      "#hash": "/%23hash",
      "a/../b": "/a%2F..%2Fb",
      "...": "/...",
      ключ: "/%D0%BA%D0%BB%D1%8E%D1%87",
      "🤓": "/%F0%9F%A4%93",
      "~!*'()": "/~!*'()",
    };
    const ns = kv();
    for (const [key, path] of Object.entries(keys)) {
      requests = [];
      await ns.get(key);
      await ns.put(key, "v");
      await ns.delete(key);
      assert.deepEqual(
        requests.map(({ method, url }) => `${method} ${url}`),
        [`GET ${path}?urlencoded=true`, `PUT ${path}?urlencoded=true`, `DELETE ${path}?urlencoded=true`],
        `key ${JSON.stringify(key)}`,
      );
      assert.equal(decodeURIComponent(requests[0].url.slice(1, requests[0].url.indexOf("?"))), key);
    }
  });

  test("a lone surrogate in a key is sent as U+FFFD, as workerd converts it", async () => {
    await kv().get("a\ud800");
    assert.equal(onlyRequest().url, "/a%EF%BF%BD?urlencoded=true");
  });

  test("a base URL with a path keeps it, with or without a trailing slash", async () => {
    await kv({ url: `${base}/region/wnam/` }).get("k");
    await kv({ url: `${base}/region/wnam` }).delete("k");
    assert.deepEqual(
      requests.map(({ url }) => url),
      ["/region/wnam/k?urlencoded=true", "/region/wnam/k?urlencoded=true"],
    );
  });

  test("a custom fetch is used, called without a receiver", async () => {
    const receivers = [];
    const ns = kv({
      fetch(url, init) {
        receivers.push(this);
        return fetch(url, init);
      },
    });
    await ns.get("k");
    assert.deepEqual(receivers, [undefined]);
    assert.equal(onlyRequest().url, "/k?urlencoded=true");
  });
});

describe("get", () => {
  test("reads the value as text by default, as each type asked, and as a stream", async () => {
    respond = () => ({ body: '{"a":[1,"ü"]}' });
    const ns = kv();
    assert.equal(await ns.get("k"), '{"a":[1,"ü"]}');
    assert.equal(await ns.get("k", "text"), '{"a":[1,"ü"]}');
    assert.equal(await ns.get("k", {}), '{"a":[1,"ü"]}');
    assert.deepEqual(await ns.get("k", "json"), { a: [1, "ü"] });
    assert.deepEqual(await ns.get("k", { type: "json" }), { a: [1, "ü"] });
    const buffer = await ns.get("k", "arrayBuffer");
    assert.ok(buffer instanceof ArrayBuffer);
    assert.equal(Buffer.from(buffer).toString(), '{"a":[1,"ü"]}');
    const stream = await ns.get("k", { type: "stream" });
    assert.ok(stream instanceof ReadableStream);
    assert.equal((await readAll(stream)).toString(), '{"a":[1,"ü"]}');
  });

  test("keeps a leading byte order mark and non-UTF-8 bytes as stored", async () => {
    respond = () => ({ body: Buffer.from([0xef, 0xbb, 0xbf, 0x61, 0xff, 0x00]) });
    const ns = kv();
    assert.equal(await ns.get("k"), "\ufeffa\ufffd\u0000");
    assert.deepEqual([...new Uint8Array(await ns.get("k", "arrayBuffer"))], [0xef, 0xbb, 0xbf, 0x61, 0xff, 0x00]);
  });

  test("cacheTtl goes in the query, truncated to an integer", async () => {
    respond = () => ({ body: "1" });
    const ns = kv();
    await ns.get("k", { cacheTtl: 60 });
    await ns.get("k", { type: "json", cacheTtl: 90.9 });
    await ns.getWithMetadata("k", { cacheTtl: "120" });
    assert.deepEqual(
      requests.map(({ url }) => url),
      ["/k?urlencoded=true&cache_ttl=60", "/k?urlencoded=true&cache_ttl=90", "/k?urlencoded=true&cache_ttl=120"],
    );
  });

  test("404 and 410 mean a missing key, for every type", async () => {
    const ns = kv();
    for (const status of [404, 410]) {
      respond = () => ({ status, headers: { "cf-cache-status": "MISS" }, body: "Not Found" });
      for (const type of ["text", "json", "arrayBuffer", "stream"]) {
        assert.equal(await ns.get("k", type), null);
      }
      assert.deepEqual(await ns.getWithMetadata("k"), { value: null, metadata: null, cacheStatus: "MISS" });
    }
  });

  test("getWithMetadata reads CF-KV-Metadata and CF-Cache-Status", async () => {
    respond = () => ({
      headers: {
        "cf-kv-metadata": rawUtf8Header('{"n":1,"s":"🤓 é"}'),
        "cf-cache-status": "HIT",
      },
      body: "v",
    });
    assert.deepEqual(await kv().getWithMetadata("k"), {
      value: "v",
      metadata: { n: 1, s: "🤓 é" },
      cacheStatus: "HIT",
    });
    respond = () => ({ body: "v" });
    const { metadata, cacheStatus } = await kv().getWithMetadata("k", { type: "arrayBuffer" });
    assert.equal(metadata, null);
    assert.equal(cacheStatus, null);
  });

  test("an unknown type is refused before any request", async () => {
    await assert.rejects(kv().get("k", "blob"), {
      name: "TypeError",
      message: 'Unknown response type. Possible types are "text", "arrayBuffer", "json", and "stream".',
    });
    await assert.rejects(kv().getWithMetadata("k", { type: "" }), { name: "TypeError" });
    assert.equal(requests.length, 0);
  });

  test("a cacheTtl that is not a number is refused before any request", async () => {
    await assert.rejects(kv().get("k", { cacheTtl: "soon" }), {
      name: "TypeError",
      message: 'KV option cacheTtl must be a finite number, got "soon".',
    });
    assert.equal(requests.length, 0);
  });
});

describe("bulk get", () => {
  test("POSTs the keys and options as workerd does and returns a Map", async () => {
    respond = () => ({ body: '{"a":"1","b/c":null}' });
    const ns = kv();
    const result = await ns.get(["a", "b/c"]);
    assert.deepEqual(result, new Map([["a", "1"], ["b/c", null]]));
    const request = onlyRequest();
    assert.equal(request.method, "POST");
    assert.equal(request.url, "/bulk/get");
    assert.equal(request.headers["content-type"], "application/json");
    assert.equal(request.body.toString(), '{"keys":["a","b/c"]}');
  });

  test("type, withMetadata and cacheTtl (as a string) go in the body", async () => {
    respond = ({ body }) => ({
      body: JSON.parse(body).withMetadata
        ? '{"a":{"value":{"x":1},"metadata":{"m":true}},"b":null}'
        : '{"a":{"x":1}}',
    });
    const ns = kv();
    assert.deepEqual(await ns.get(["a"], "json"), new Map([["a", { x: 1 }]]));
    await ns.get(["a"], { type: "text", cacheTtl: 60 });
    assert.deepEqual(
      await ns.getWithMetadata(["a", "b"], { type: "json", cacheTtl: 30.5 }),
      new Map([
        ["a", { value: { x: 1 }, metadata: { m: true } }],
        ["b", null],
      ]),
    );
    await ns.getWithMetadata(["a"]);
    assert.deepEqual(
      requests.map(({ body }) => JSON.parse(body)),
      [
        { keys: ["a"], type: "json" },
        { keys: ["a"], type: "text", cacheTtl: "60" },
        { keys: ["a", "b"], type: "json", withMetadata: true, cacheTtl: "30" },
        { keys: ["a"], withMetadata: true },
      ],
    );
  });

  test("any type is left for the server to refuse, as under workerd", async () => {
    const message = '"arrayBuffer" is not a valid type. Use "json" or "text"';
    respond = () => ({ status: 400, statusText: message, body: message });
    await assert.rejects(kv().get(["a"], "arrayBuffer"), { message: `KV GET_BULK failed: 400 ${message}` });
    assert.deepEqual(JSON.parse(onlyRequest().body), { keys: ["a"], type: "arrayBuffer" });
  });
});

describe("put", () => {
  test("a string is sent as UTF-8 text/plain", async () => {
    await kv().put("k", "héllo 🤓");
    const request = onlyRequest();
    assert.equal(request.method, "PUT");
    assert.equal(request.url, "/k?urlencoded=true");
    assert.equal(request.headers["content-type"], "text/plain;charset=UTF-8");
    assert.equal(request.body.toString(), "héllo 🤓");
    assert.equal(request.headers["cf-kv-metadata"], undefined);
  });

  test("binary values are sent as their bytes, a view only its own window", async () => {
    const bytes = new Uint8Array([0, 1, 2, 3, 254, 255]);
    const ns = kv();
    await ns.put("buffer", bytes.buffer);
    await ns.put("view", bytes.subarray(2, 5));
    await ns.put("dataview", new DataView(bytes.buffer, 1, 2));
    await ns.put("node-buffer", Buffer.from("xyz"));
    assert.deepEqual(
      requests.map(({ body }) => [...body]),
      [[0, 1, 2, 3, 254, 255], [2, 3, 254], [1, 2], [120, 121, 122]],
    );
    for (const { headers } of requests) assert.equal(headers["content-type"], undefined);
  });

  test("a ReadableStream is streamed as the body", async () => {
    await kv().put("k", streamOf("one ", "two ", "three"));
    const request = onlyRequest();
    assert.equal(request.body.toString(), "one two three");
    assert.equal(request.headers["transfer-encoding"], "chunked");
  });

  test("expiration and expirationTtl go in the query as integers", async () => {
    const ns = kv();
    await ns.put("k", "v", { expiration: 1900000000 });
    await ns.put("k", "v", { expirationTtl: 300.7 });
    await ns.put("k", "v", { expiration: 1900000000, expirationTtl: 300 });
    await ns.put("k", "v", { expiration: undefined, expirationTtl: null, metadata: null });
    assert.deepEqual(
      requests.map(({ url }) => url),
      [
        "/k?urlencoded=true&expiration=1900000000",
        "/k?urlencoded=true&expiration_ttl=300",
        "/k?urlencoded=true&expiration=1900000000&expiration_ttl=300",
        "/k?urlencoded=true",
      ],
    );
    for (const { headers } of requests) assert.equal(headers["cf-kv-metadata"], undefined);
  });

  test("metadata is sent as JSON in CF-KV-Metadata, non-ASCII escaped", async () => {
    const metadata = { n: 1, s: "é 🤓 \u007f", list: [true, null], nested: { "ключ": "" } };
    await kv().put("k", "v", { metadata });
    const header = onlyRequest().headers["cf-kv-metadata"];
    assert.match(header, /^[\x20-\x7e]+$/);
    assert.deepEqual(JSON.parse(header), metadata);
    assert.equal(
      header,
      '{"n":1,"s":"\\u00e9 \\ud83e\\udd13 \\u007f","list":[true,null],"nested":{"\\u043a\\u043b\\u044e\\u0447":""}}',
    );
  });

  test("other values are refused before any request", async () => {
    const ns = kv();
    for (const value of [42, true, null, undefined, {}, [1], new Blob(["x"]), Symbol("v")]) {
      await assert.rejects(ns.put("k", value), {
        name: "TypeError",
        message: "KV put() accepts only strings, ArrayBuffers, ArrayBufferViews, and ReadableStreams as values.",
      });
    }
    await assert.rejects(ns.put("k", "v", { metadata: () => {} }), { name: "TypeError" });
    await assert.rejects(ns.put("k", "v", { expirationTtl: NaN }), {
      name: "TypeError",
      message: "KV option expirationTtl must be a finite number, got NaN.",
    });
    assert.equal(requests.length, 0);
  });
});

describe("delete", () => {
  test("sends DELETE on the key", async () => {
    await kv().delete("a b");
    const request = onlyRequest();
    assert.equal(request.method, "DELETE");
    assert.equal(request.url, "/a%20b?urlencoded=true");
    assert.equal(request.body.length, 0);
  });
});

describe("list", () => {
  const listing = {
    keys: [
      { name: "a", expiration: 1900000000, metadata: '{"m":[1,2]}' },
      { name: "b", metadata: { already: "parsed" } },
      { name: "c" },
    ],
    list_complete: false,
    cursor: "next-page",
  };

  test("sends only the options given, encoded", async () => {
    respond = () => ({ body: '{"keys":[],"list_complete":true}' });
    const ns = kv();
    await ns.list();
    await ns.list({});
    await ns.list({ limit: 10, prefix: "a/b c&", cursor: "abc+/=" });
    await ns.list({ limit: 0, prefix: "", cursor: null });
    await ns.list({ limit: -5, prefix: null, cursor: undefined });
    await ns.list({ limit: 2.9 });
    assert.deepEqual(
      requests.map(({ url }) => url),
      [
        "/",
        "/",
        "/?key_count_limit=10&prefix=a%2Fb%20c%26&cursor=abc%2B%2F%3D",
        "/?prefix=",
        "/",
        "/?key_count_limit=2",
      ],
    );
  });

  test("parses each key's metadata and adds cacheStatus", async () => {
    respond = () => ({ headers: { "cf-cache-status": "HIT" }, body: JSON.stringify(listing) });
    assert.deepEqual(await kv().list({ prefix: "" }), {
      keys: [
        { name: "a", expiration: 1900000000, metadata: { m: [1, 2] } },
        { name: "b", metadata: { already: "parsed" } },
        { name: "c" },
      ],
      list_complete: false,
      cursor: "next-page",
      cacheStatus: "HIT",
    });
    respond = () => ({ body: '{"keys":[],"list_complete":true}' });
    assert.deepEqual(await kv().list(), { keys: [], list_complete: true, cacheStatus: null });
  });
});

describe("errors", () => {
  test("a non-2xx answer fails with the operation, status and reason phrase", async () => {
    const ns = kv();
    const cases = [
      [() => ns.get("k"), "GET", 500, "Internal Server Error"],
      [() => ns.getWithMetadata("k"), "GET", 400, "Invalid cache_ttl of 10. Cache TTL must be at least 30."],
      [() => ns.put("k", "v"), "PUT", 429, "Too Many Requests"],
      [() => ns.put("k", "v"), "PUT", 413, "Value length of 26214401 exceeds limit of 26214400."],
      [() => ns.delete("k"), "DELETE", 401, "Unauthorized"],
      [() => ns.list(), "GET", 503, "Service Unavailable"],
      [() => ns.get(["k"]), "GET_BULK", 400, "You can request a maximum of 100 keys"],
      [() => ns.getWithMetadata(["k"]), "GET_BULK", 413, "Total size of request exceeds the limit"],
    ];
    for (const [call, op, status, statusText] of cases) {
      respond = () => ({ status, statusText, body: statusText });
      await assert.rejects(call(), (error) => {
        assert.equal(error.constructor, Error);
        assert.equal(error.message, `KV ${op} failed: ${status} ${statusText}`);
        return true;
      });
    }
  });

  test("an unreachable region fails with the operation and the address", async () => {
    const closed = http.createServer();
    await new Promise((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${closed.address().port}`;
    await new Promise((resolve) => closed.close(resolve));
    await assert.rejects(kv({ url }).put("k", "v"), (error) => {
      assert.match(error.message, new RegExp(`^KV PUT failed: could not reach ${url}/k\\?urlencoded=true: `));
      assert.ok(error.cause);
      return true;
    });
  });
});

describe("key checks, before any request", () => {
  test("empty, . and .. are TypeErrors", async () => {
    const ns = kv();
    const calls = [(k) => ns.get(k), (k) => ns.getWithMetadata(k), (k) => ns.put(k, "v"), (k) => ns.delete(k)];
    for (const call of calls) {
      await assert.rejects(call(""), { name: "TypeError", message: "Key name cannot be empty." });
      await assert.rejects(call("."), { name: "TypeError", message: '"." is not allowed as a key name.' });
      await assert.rejects(call(".."), { name: "TypeError", message: '".." is not allowed as a key name.' });
    }
    assert.equal(requests.length, 0);
  });

  test("a key over 512 UTF-8 bytes fails as a 414 of its operation", async () => {
    const ns = kv();
    const long = "é".repeat(257);
    const cases = [
      [ns.get(long), "GET"],
      [ns.getWithMetadata(long, "json"), "GET"],
      [ns.put(long, "v"), "PUT"],
      [ns.delete(long), "DELETE"],
    ];
    for (const [promise, op] of cases) {
      await assert.rejects(promise, {
        name: "Error",
        message: `KV ${op} failed: 414 UTF-8 encoded length of 514 exceeds key length limit of 512.`,
      });
    }
    assert.equal(requests.length, 0);
    await ns.get("é".repeat(256));
    assert.equal(requests.length, 1);
  });

  test("keys are converted to strings, as in workerd", async () => {
    await kv().get(42);
    respond = () => ({ body: "{}" });
    await kv().get([1, "b"]);
    assert.equal(requests[0].url, "/42?urlencoded=true");
    assert.deepEqual(JSON.parse(requests[1].body), { keys: ["1", "b"] });
  });

  test("bad arguments reject the promise rather than throw", () => {
    const promise = kv().get("");
    assert.ok(promise instanceof Promise);
    return assert.rejects(promise, TypeError);
  });
});

describe("constructor", () => {
  const good = { url: "http://127.0.0.1:1", namespaceId: NAMESPACE, token: TOKEN };
  const cases = [
    [undefined, /needs `url`/],
    [{ ...good, url: undefined }, /needs `url`/],
    [{ ...good, url: "not a url" }, /Invalid URL/],
    [{ ...good, url: "ftp://127.0.0.1" }, /must be http: or https:, not ftp:/],
    [{ ...good, url: "http://127.0.0.1/?a=b" }, /no query or fragment/],
    [{ ...good, namespaceId: undefined }, /32 hex digits, got undefined/],
    [{ ...good, namespaceId: "my-namespace" }, /32 hex digits, got "my-namespace"/],
    [{ ...good, token: "" }, /needs `token`/],
    [{ ...good, fetch: "fetch" }, /`fetch` must be a function/],
  ];
  for (const [options, message] of cases) {
    test(`refuses ${JSON.stringify(options) ?? "no options"}`, () => {
      assert.throws(() => new EdgeKVNamespace(options), { name: "TypeError", message });
    });
  }

  test("accepts a URL object and an upper-case namespace id", () => {
    assert.ok(new EdgeKVNamespace({ ...good, url: new URL(good.url), namespaceId: NAMESPACE.toUpperCase() }));
  });
});
