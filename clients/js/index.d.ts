// Types of the EdgeKV client. They follow the `KVNamespace` declarations of
// @cloudflare/workers-types, so an EdgeKVNamespace can stand wherever a Worker's code expects a
// KVNamespace, and the same type parameters narrow results the same way.

/** How to reach one namespace through one region's binding listener. */
export interface EdgeKVNamespaceOptions {
  /** Base URL of the region's binding listener, such as `http://127.0.0.1:10787`. */
  url: string | URL;
  /** The namespace's id: 32 hex digits, as the REST API returned when it was created. */
  namespaceId: string;
  /** An API token the region accepts, sent as `Authorization: Bearer <token>`. */
  token: string;
  /**
   * The fetch to send requests with; the global fetch by default. It is called without a
   * receiver, so pass a bound function (e.g. `svc.fetch.bind(svc)` for a service binding).
   */
  fetch?: (input: string, init: RequestInit) => Promise<Response>;
}

export interface KVNamespaceGetOptions<Type> {
  type: Type;
  /** Seconds the region may keep serving what this read found; at least 30. */
  cacheTtl?: number;
}

export interface KVNamespacePutOptions {
  /** When the key expires, in seconds since the epoch. */
  expiration?: number;
  /** Seconds from now until the key expires; at least 60. */
  expirationTtl?: number;
  /** Any JSON-serializable value, at most 1024 bytes serialized. */
  metadata?: any | null;
}

export interface KVNamespaceListOptions {
  /** Most keys in one page; 1000 when left out. */
  limit?: number;
  prefix?: string | null;
  /** The `cursor` of the previous page. */
  cursor?: string | null;
}

export interface KVNamespaceListKey<Metadata, Key extends string = string> {
  name: Key;
  expiration?: number;
  metadata?: Metadata;
}

export type KVNamespaceListResult<Metadata, Key extends string = string> =
  | {
      list_complete: false;
      keys: KVNamespaceListKey<Metadata, Key>[];
      cursor: string;
      cacheStatus: string | null;
    }
  | {
      list_complete: true;
      keys: KVNamespaceListKey<Metadata, Key>[];
      cacheStatus: string | null;
    };

export interface KVNamespaceGetWithMetadataResult<Value, Metadata> {
  value: Value | null;
  metadata: Metadata | null;
  /** `HIT` or `MISS` when the region has an edge cache, null otherwise. */
  cacheStatus: string | null;
}

type GetResult<Value> = Promise<Value | null>;
type BulkResult<Value> = Promise<Map<string, Value | null>>;
type WithMetadata<Value, Metadata> = Promise<KVNamespaceGetWithMetadataResult<Value, Metadata>>;
type BulkWithMetadata<Value, Metadata> = Promise<
  Map<string, KVNamespaceGetWithMetadataResult<Value, Metadata>>
>;

/** Cloudflare's KVNamespace binding, served by an EdgeKV region. */
export declare class EdgeKVNamespace<Key extends string = string> {
  constructor(options: EdgeKVNamespaceOptions);

  get(key: Key, options?: Partial<KVNamespaceGetOptions<undefined>>): GetResult<string>;
  get(key: Key, type: "text"): GetResult<string>;
  get<ExpectedValue = unknown>(key: Key, type: "json"): GetResult<ExpectedValue>;
  get(key: Key, type: "arrayBuffer"): GetResult<ArrayBuffer>;
  get(key: Key, type: "stream"): GetResult<ReadableStream>;
  get(key: Key, options?: KVNamespaceGetOptions<"text">): GetResult<string>;
  get<ExpectedValue = unknown>(key: Key, options?: KVNamespaceGetOptions<"json">): GetResult<ExpectedValue>;
  get(key: Key, options?: KVNamespaceGetOptions<"arrayBuffer">): GetResult<ArrayBuffer>;
  get(key: Key, options?: KVNamespaceGetOptions<"stream">): GetResult<ReadableStream>;

  get(key: Array<Key>, type: "text"): BulkResult<string>;
  get<ExpectedValue = unknown>(key: Array<Key>, type: "json"): BulkResult<ExpectedValue>;
  get(key: Array<Key>, options?: Partial<KVNamespaceGetOptions<undefined>>): BulkResult<string>;
  get(key: Array<Key>, options?: KVNamespaceGetOptions<"text">): BulkResult<string>;
  get<ExpectedValue = unknown>(key: Array<Key>, options?: KVNamespaceGetOptions<"json">): BulkResult<ExpectedValue>;

  list<Metadata = unknown>(options?: KVNamespaceListOptions): Promise<KVNamespaceListResult<Metadata, Key>>;

  put(
    key: Key,
    value: string | ArrayBuffer | ArrayBufferView | ReadableStream,
    options?: KVNamespacePutOptions,
  ): Promise<void>;

  getWithMetadata<Metadata = unknown>(
    key: Key,
    options?: Partial<KVNamespaceGetOptions<undefined>>,
  ): WithMetadata<string, Metadata>;
  getWithMetadata<Metadata = unknown>(key: Key, type: "text"): WithMetadata<string, Metadata>;
  getWithMetadata<ExpectedValue = unknown, Metadata = unknown>(
    key: Key,
    type: "json",
  ): WithMetadata<ExpectedValue, Metadata>;
  getWithMetadata<Metadata = unknown>(key: Key, type: "arrayBuffer"): WithMetadata<ArrayBuffer, Metadata>;
  getWithMetadata<Metadata = unknown>(key: Key, type: "stream"): WithMetadata<ReadableStream, Metadata>;
  getWithMetadata<Metadata = unknown>(
    key: Key,
    options: KVNamespaceGetOptions<"text">,
  ): WithMetadata<string, Metadata>;
  getWithMetadata<ExpectedValue = unknown, Metadata = unknown>(
    key: Key,
    options: KVNamespaceGetOptions<"json">,
  ): WithMetadata<ExpectedValue, Metadata>;
  getWithMetadata<Metadata = unknown>(
    key: Key,
    options: KVNamespaceGetOptions<"arrayBuffer">,
  ): WithMetadata<ArrayBuffer, Metadata>;
  getWithMetadata<Metadata = unknown>(
    key: Key,
    options: KVNamespaceGetOptions<"stream">,
  ): WithMetadata<ReadableStream, Metadata>;

  // In bulk each entry is `{ value, metadata }` as the server sent it (or null for a missing
  // key); the declared type is Cloudflare's, so the class stays assignable to KVNamespace.
  getWithMetadata<Metadata = unknown>(key: Array<Key>, type: "text"): BulkWithMetadata<string, Metadata>;
  getWithMetadata<ExpectedValue = unknown, Metadata = unknown>(
    key: Array<Key>,
    type: "json",
  ): BulkWithMetadata<ExpectedValue, Metadata>;
  getWithMetadata<Metadata = unknown>(
    key: Array<Key>,
    options?: Partial<KVNamespaceGetOptions<undefined>>,
  ): BulkWithMetadata<string, Metadata>;
  getWithMetadata<Metadata = unknown>(
    key: Array<Key>,
    options?: KVNamespaceGetOptions<"text">,
  ): BulkWithMetadata<string, Metadata>;
  getWithMetadata<ExpectedValue = unknown, Metadata = unknown>(
    key: Array<Key>,
    options?: KVNamespaceGetOptions<"json">,
  ): BulkWithMetadata<ExpectedValue, Metadata>;

  delete(key: Key): Promise<void>;
}
