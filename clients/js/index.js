// Cloudflare's KVNamespace binding for code running outside workerd: the same methods, results
// and errors as `env.MY_KV` in a Worker, spoken over fetch to an EdgeKV region's binding
// listener, which serves the protocol workerd speaks to Workers KV.

const MAX_KEY_BYTES = 512;
const VALUE_TYPES = ["text", "json", "arrayBuffer", "stream"];
const PUT_VALUE_ERROR =
  "KV put() accepts only strings, ArrayBuffers, ArrayBufferViews, and ReadableStreams as values.";
const NAMESPACE_ID = /^[0-9a-f]{32}$/i;

const utf8Encoder = new TextEncoder();
// workerd hands a value's bytes to JavaScript as they are stored: a leading byte order mark is
// part of the value, not a hint to strip.
const utf8Decoder = new TextDecoder("utf-8", { ignoreBOM: true });
const strictUtf8Decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

export class EdgeKVNamespace {
  #base;
  #headers;
  #fetch;

  constructor(options) {
    const { url, namespaceId, token, fetch = globalThis.fetch } = options ?? {};
    if (url == null || url === "") {
      throw new TypeError(
        "EdgeKVNamespace needs `url`, the base URL of a region's binding listener " +
          "(e.g. http://127.0.0.1:10787).",
      );
    }
    const base = new URL(url);
    if (base.protocol !== "http:" && base.protocol !== "https:") {
      throw new TypeError(`EdgeKVNamespace \`url\` must be http: or https:, not ${base.protocol}`);
    }
    // Request paths are appended to the base as text, so a query or fragment would swallow them.
    if (base.search !== "" || base.hash !== "") {
      throw new TypeError(`EdgeKVNamespace \`url\` must have no query or fragment: ${base.href}`);
    }
    if (typeof namespaceId !== "string" || !NAMESPACE_ID.test(namespaceId)) {
      throw new TypeError(
        `EdgeKVNamespace \`namespaceId\` must be a namespace id of 32 hex digits, got ${describe(namespaceId)}.`,
      );
    }
    if (typeof token !== "string" || token === "") {
      throw new TypeError("EdgeKVNamespace needs `token`, an API token the region accepts.");
    }
    if (typeof fetch !== "function") {
      throw new TypeError("EdgeKVNamespace `fetch` must be a function like the global fetch.");
    }
    this.#base = base.href.replace(/\/+$/, "");
    this.#headers = { authorization: `Bearer ${token}`, "edgekv-namespace": namespaceId };
    this.#fetch = fetch;
  }

  async get(key, options) {
    if (Array.isArray(key)) return this.#getBulk(key, options, false);
    const { value } = await this.#getOne(key, options);
    return value;
  }

  async getWithMetadata(key, options) {
    if (Array.isArray(key)) return this.#getBulk(key, options, true);
    return this.#getOne(key, options);
  }

  async put(key, value, options) {
    const name = keyName("PUT", key);
    let query = "?urlencoded=true";
    const headers = {};
    if (options != null) {
      const { expiration, expirationTtl, metadata } = options;
      if (expiration != null) {
        query += `&expiration=${integerOption("expiration", expiration)}`;
      }
      if (expirationTtl != null) {
        query += `&expiration_ttl=${integerOption("expirationTtl", expirationTtl)}`;
      }
      if (metadata != null) {
        headers["cf-kv-metadata"] = metadataHeader(metadata);
      }
    }
    const { body, contentType, duplex } = putBody(value);
    if (contentType !== undefined) headers["content-type"] = contentType;
    const path = `/${encodeURIComponent(name)}${query}`;
    const response = await this.#send("PUT", "PUT", path, { headers, body, duplex });
    await ensureOk("PUT", response);
    await response.arrayBuffer();
  }

  async delete(key) {
    const name = keyName("DELETE", key);
    const response = await this.#send("DELETE", "DELETE", `/${encodeURIComponent(name)}?urlencoded=true`);
    await ensureOk("DELETE", response);
    await response.arrayBuffer();
  }

  async list(options) {
    const params = [];
    if (options != null) {
      const { limit, prefix, cursor } = options;
      if (limit != null) {
        const count = integerOption("limit", limit);
        // A limit of 0 or less means "the server's default", as in workerd.
        if (Number(count) > 0) params.push(`key_count_limit=${count}`);
      }
      if (prefix != null) params.push(`prefix=${encodeText(prefix)}`);
      if (cursor != null) params.push(`cursor=${encodeText(cursor)}`);
    }
    const path = params.length === 0 ? "/" : `/?${params.join("&")}`;
    // workerd names a failed list "GET", so callers matching on messages see the same text.
    const response = await this.#send("GET", "GET", path);
    await ensureOk("GET", response);
    const cacheStatus = response.headers.get("cf-cache-status");
    const result = JSON.parse(await response.text());
    // The protocol carries each key's metadata as JSON text inside the JSON listing.
    for (const entry of result.keys ?? []) {
      if (typeof entry?.metadata === "string") entry.metadata = JSON.parse(entry.metadata);
    }
    result.cacheStatus = cacheStatus;
    return result;
  }

  async #getOne(key, options) {
    const name = keyName("GET", key);
    const { type = "text", cacheTtl } = getOptions(options);
    if (!VALUE_TYPES.includes(type)) {
      throw new TypeError(
        'Unknown response type. Possible types are "text", "arrayBuffer", "json", and "stream".',
      );
    }
    let query = "?urlencoded=true";
    if (cacheTtl !== undefined) query += `&cache_ttl=${cacheTtl}`;
    const response = await this.#send("GET", "GET", `/${encodeURIComponent(name)}${query}`);
    const cacheStatus = response.headers.get("cf-cache-status");
    if (response.status === 404 || response.status === 410) {
      await response.arrayBuffer();
      return { value: null, metadata: null, cacheStatus };
    }
    await ensureOk("GET", response);
    const rawMetadata = response.headers.get("cf-kv-metadata");
    const value = await readValue(response, type);
    const metadata = rawMetadata === null ? null : JSON.parse(headerText(rawMetadata));
    return { value, metadata, cacheStatus };
  }

  async #getBulk(keys, options, withMetadata) {
    const { type, cacheTtl } = getOptions(options);
    const request = { keys: keys.map((key) => String(key)) };
    // Any type goes to the server, which alone decides which it serves in bulk (text and json),
    // so the error a Worker sees for another type is the server's, as under workerd.
    if (type !== undefined && type !== "") request.type = String(type);
    if (withMetadata) request.withMetadata = true;
    if (cacheTtl !== undefined) request.cacheTtl = cacheTtl;
    const response = await this.#send("GET_BULK", "POST", "/bulk/get", {
      headers: { "content-type": "application/json" },
      body: JSON.stringify(request),
    });
    await ensureOk("GET_BULK", response);
    return new Map(Object.entries(JSON.parse(await response.text())));
  }

  async #send(op, method, path, init = {}) {
    const fetch = this.#fetch;
    const url = this.#base + path;
    try {
      // Called unbound: a Worker's global fetch refuses to run with `this` set to another object.
      return await fetch(url, { ...init, method, headers: { ...this.#headers, ...init.headers } });
    } catch (error) {
      // fetch says only "fetch failed"; the operation and the address tell the caller what broke.
      const reason = error?.cause?.message ?? error?.message ?? String(error);
      throw new Error(`KV ${op} failed: could not reach ${url}: ${reason}`, { cause: error });
    }
  }
}

async function ensureOk(op, response) {
  if (response.ok) return;
  // Reading the body to its end lets the connection be reused for the next request.
  await response.arrayBuffer();
  throw new Error(`KV ${op} failed: ${response.status} ${response.statusText}`);
}

// The checks workerd makes before it sends a request, with its messages, so a bad key fails the
// same way, and without a round trip, as it does in a Worker.
function keyName(op, key) {
  // A lone surrogate becomes U+FFFD, as in workerd's conversion to UTF-8; encodeURIComponent
  // would throw on it instead.
  const name = String(key).toWellFormed();
  if (name === "") throw new TypeError("Key name cannot be empty.");
  if (name === "." || name === "..") throw new TypeError(`"${name}" is not allowed as a key name.`);
  const length = utf8Encoder.encode(name).byteLength;
  if (length > MAX_KEY_BYTES) {
    throw new Error(
      `KV ${op} failed: 414 UTF-8 encoded length of ${length} exceeds key length limit of ${MAX_KEY_BYTES}.`,
    );
  }
  return name;
}

// get() takes either the type name or { type, cacheTtl }.
function getOptions(options) {
  if (typeof options === "string") return { type: options, cacheTtl: undefined };
  if (options == null) return { type: undefined, cacheTtl: undefined };
  const { type, cacheTtl } = options;
  return {
    type: type === null ? undefined : type,
    cacheTtl: cacheTtl == null ? undefined : integerOption("cacheTtl", cacheTtl),
  };
}

// These options are integers in workerd's binding: a fractional number is truncated toward zero
// (so `Date.now() / 1000 + 3600` works as an expiration), and what is not a finite number is
// refused. Range checks (cacheTtl >= 30, expirationTtl >= 60) are left to the server, so their
// messages are the server's.
function integerOption(name, value) {
  const number = Number(value);
  if (!Number.isFinite(number)) {
    throw new TypeError(`KV option ${name} must be a finite number, got ${describe(value)}.`);
  }
  return String(Math.trunc(number));
}

function encodeText(value) {
  return encodeURIComponent(String(value).toWellFormed());
}

// Header values are bytes: Node's fetch sends each character as one byte and refuses any above
// U+00FF, and DEL may not appear at all, so raw non-ASCII metadata would go out garbled or not
// at all. \u escapes keep the header ASCII and the JSON the same.
function metadataHeader(metadata) {
  const json = JSON.stringify(metadata);
  if (json === undefined) {
    throw new TypeError(`KV put() metadata must be serializable to JSON, got ${describe(metadata)}.`);
  }
  return json.replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

// Node's fetch hands over a header's raw bytes one character per byte, so UTF-8 in a header
// arrives as mojibake; a Worker's fetch has already decoded it. Text that is valid UTF-8 once
// read back as bytes is taken as Node's case.
function headerText(raw) {
  if (!/[\u0080-\u00ff]/.test(raw) || /[^\u0000-\u00ff]/.test(raw)) return raw;
  const bytes = Uint8Array.from(raw, (c) => c.charCodeAt(0));
  try {
    return strictUtf8Decoder.decode(bytes);
  } catch {
    return raw;
  }
}

function putBody(value) {
  if (typeof value === "string") {
    // Set here rather than left to fetch so the server sees what workerd sends, whatever the
    // fetch implementation.
    return { body: value, contentType: "text/plain;charset=UTF-8" };
  }
  if (value instanceof ArrayBuffer) return { body: value };
  if (ArrayBuffer.isView(value)) {
    // Only the view's window of its buffer is the value.
    return { body: new Uint8Array(value.buffer, value.byteOffset, value.byteLength) };
  }
  if (value instanceof ReadableStream) {
    // Node's fetch refuses a stream body unless told the request is sent while it is read.
    return { body: value, duplex: "half" };
  }
  throw new TypeError(PUT_VALUE_ERROR);
}

async function readValue(response, type) {
  switch (type) {
    case "stream":
      return response.body;
    case "arrayBuffer":
      return response.arrayBuffer();
    case "json":
      return JSON.parse(utf8Decoder.decode(await response.arrayBuffer()));
    default:
      return utf8Decoder.decode(await response.arrayBuffer());
  }
}

function describe(value) {
  return typeof value === "string" ? JSON.stringify(value) : String(value);
}
