"""The official Python SDK (cloudflare==5.9.0) against an EdgeKV node.

Every Workers KV call the SDK offers is exercised here and its result checked against what was
written: the namespace calls (`kv.namespaces.*`), values, metadata, key listing, the bulk calls
and their deprecated `kv.namespaces.keys.*` twins, plus the error classes the SDK raises from
the HTTP status. The contract is kv-api.md in shared/ beside the repository (sections cited as §N).
"""

from __future__ import annotations

import base64
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

import cloudflare
import httpx
import pytest
from cloudflare import (
    APIStatusError,
    BadRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
)

# Cloudflare error codes (kv-api.md §6).
KEY_NOT_FOUND = 10009
NAMESPACE_NOT_FOUND = 10013
DUPLICATE_TITLE = 10014
AUTHENTICATION_ERROR = 10000

# Keys that need care in a URL path: separators, escapes, spaces, non-ASCII (kv-api.md §3).
SPECIAL_KEYS = [
    "a/b/c",
    "/leading-and-trailing/",
    "a//double",
    "colon:key",
    "bang!key",
    "100%",
    "%2F-literal-escape",
    "percent%25twice",
    "with space",
    "  ",
    "tab\tkey",
    "plus+sign",
    "question?hash#frag",
    "semi;colon=eq&amp",
    "back\\slash",
    "..a",
    "a/../b",
    "ünïcødé-ß",
    "日本語キー",
    "emoji-😀",
    "~tilde[brackets]{braces}",
    "k" * 512,
    "✓" * 170,  # 510 bytes of UTF-8
]


def kv(client: cloudflare.Cloudflare) -> Any:
    return client.kv.namespaces


def assert_api_error(err: APIStatusError, status: int, code: int | None = None) -> None:
    """The failure envelope of kv-api.md §1: success false, result null, at least one error."""
    assert err.status_code == status, err.body
    assert isinstance(err.body, dict), err.body
    assert err.body["success"] is False
    assert err.body["result"] is None
    assert isinstance(err.body["messages"], list)
    assert len(err.errors) >= 1
    for e in err.errors:
        assert isinstance(e.code, int) and e.code >= 1000
        assert e.message
    if code is not None:
        assert [e.code for e in err.errors] == [code], err.body


def put(client, account_id, namespace_id, key, value: bytes, **kwargs) -> None:
    result = kv(client).values.update(
        key, account_id=account_id, namespace_id=namespace_id, value=value, **kwargs
    )
    # The SDK unwraps the envelope; the node replies `result: null` (kv-api.md §2 #8).
    assert result is None


def get(client, account_id, namespace_id, key) -> bytes:
    return kv(client).values.get(key, account_id=account_id, namespace_id=namespace_id).read()


def list_all_keys(client, account_id, namespace_id, **kwargs) -> list:
    return list(kv(client).keys.list(namespace_id, account_id=account_id, **kwargs))


def utf8_sorted(names):
    return sorted(names, key=lambda name: name.encode("utf-8"))


# ---- namespaces ------------------------------------------------------------------------------


def test_namespace_create_get_rename_delete(client, account_id):
    created = kv(client).create(account_id=account_id, title="My Own Namespace")
    assert created is not None
    assert len(created.id) == 32 and all(c in "0123456789abcdef" for c in created.id)
    assert created.title == "My Own Namespace"
    assert created.supports_url_encoding is True

    fetched = kv(client).get(created.id, account_id=account_id)
    assert fetched is not None
    assert (fetched.id, fetched.title) == (created.id, "My Own Namespace")

    renamed = kv(client).update(created.id, account_id=account_id, title="Renamed ✓")
    assert (renamed.id, renamed.title) == (created.id, "Renamed ✓")
    assert kv(client).get(created.id, account_id=account_id).title == "Renamed ✓"
    assert [(n.id, n.title) for n in kv(client).list(account_id=account_id)] == [
        (created.id, "Renamed ✓")
    ]
    # Renaming to the current title is not a duplicate.
    assert kv(client).update(created.id, account_id=account_id, title="Renamed ✓").title == (
        "Renamed ✓"
    )

    # Keys survive a rename.
    put(client, account_id, created.id, "k", b"v")
    kv(client).update(created.id, account_id=account_id, title="Third title")
    assert get(client, account_id, created.id, "k") == b"v"

    assert kv(client).delete(created.id, account_id=account_id) is None
    with pytest.raises(NotFoundError) as exc:
        kv(client).get(created.id, account_id=account_id)
    assert_api_error(exc.value, 404, NAMESPACE_NOT_FOUND)
    with pytest.raises(NotFoundError) as exc:
        kv(client).delete(created.id, account_id=account_id)
    assert_api_error(exc.value, 404, NAMESPACE_NOT_FOUND)
    assert list(kv(client).list(account_id=account_id)) == []


def test_deleting_a_namespace_deletes_its_keys_and_frees_its_title(client, account_id):
    first = kv(client).create(account_id=account_id, title="reused").id
    put(client, account_id, first, "k", b"old")
    kv(client).delete(first, account_id=account_id)
    with pytest.raises(NotFoundError) as exc:
        get(client, account_id, first, "k")
    assert_api_error(exc.value, 404, NAMESPACE_NOT_FOUND)

    second = kv(client).create(account_id=account_id, title="reused").id
    assert second != first
    assert list_all_keys(client, account_id, second) == []


def test_duplicate_title_is_a_bad_request(client, account_id):
    kv(client).create(account_id=account_id, title="dup")
    with pytest.raises(BadRequestError) as exc:
        kv(client).create(account_id=account_id, title="dup")
    assert_api_error(exc.value, 400, DUPLICATE_TITLE)

    other = kv(client).create(account_id=account_id, title="other").id
    with pytest.raises(BadRequestError) as exc:
        kv(client).update(other, account_id=account_id, title="dup")
    assert_api_error(exc.value, 400, DUPLICATE_TITLE)
    assert kv(client).get(other, account_id=account_id).title == "other"


def test_titles_are_unique_per_account_only(client, account_id):
    other_account = uuid.uuid4().hex
    mine = kv(client).create(account_id=account_id, title="same").id
    theirs = kv(client).create(account_id=other_account, title="same").id
    assert mine != theirs
    # Accounts are isolated: one account cannot see or touch another's namespace.
    assert [n.id for n in kv(client).list(account_id=other_account)] == [theirs]
    with pytest.raises(NotFoundError) as exc:
        kv(client).get(mine, account_id=other_account)
    assert_api_error(exc.value, 404, NAMESPACE_NOT_FOUND)


@pytest.mark.parametrize("title", ["", "   ", "t" * 513])
def test_invalid_titles_are_refused(client, account_id, title):
    with pytest.raises(BadRequestError) as exc:
        kv(client).create(account_id=account_id, title=title)
    assert_api_error(exc.value, 400)
    assert list(kv(client).list(account_id=account_id)) == []


def test_title_of_512_characters_is_accepted(client, account_id):
    title = "é" * 512  # 512 characters, 1024 bytes
    assert kv(client).create(account_id=account_id, title=title).title == title


def test_namespace_list_pagination_order_and_direction(client, account_id):
    titles = [f"title-{i:02d}" for i in range(25)]
    shuffled = titles[:]
    random.Random(7).shuffle(shuffled)
    ids_by_title = {t: kv(client).create(account_id=account_id, title=t).id for t in shuffled}

    # The SDK's auto-pagination asks for page+1 until a page comes back empty (kv-api.md §4).
    first = kv(client).list(account_id=account_id, per_page=10, order="title", direction="asc")
    pages = list(first.iter_pages())
    assert [len(p.result) for p in pages] == [10, 10, 5, 0]
    assert [p.result_info.page for p in pages] == [1, 2, 3, 4]
    assert all(p.result_info.per_page == 10 for p in pages)
    assert [n.title for n in first] == titles  # iterating a page iterates every page
    assert all(ids_by_title[n.title] == n.id for n in first)

    desc = list(kv(client).list(account_id=account_id, per_page=7, order="title", direction="desc"))
    assert [n.title for n in desc] == titles[::-1]

    by_id = [n.id for n in kv(client).list(account_id=account_id, per_page=10, order="id")]
    assert by_id == sorted(ids_by_title.values())
    by_id_desc = [
        n.id
        for n in kv(client).list(account_id=account_id, per_page=10, order="id", direction="desc")
    ]
    assert by_id_desc == sorted(ids_by_title.values(), reverse=True)

    # Explicit page/per_page, one page at a time.
    for page_number, expected in [(1, titles[:10]), (2, titles[10:20]), (3, titles[20:]), (4, [])]:
        raw = kv(client).with_raw_response.list(
            account_id=account_id, page=page_number, per_page=10, order="title"
        )
        body = raw.http_response.json()
        assert [n["title"] for n in body["result"]] == expected
        assert body["result_info"] == {
            "page": page_number,
            "per_page": 10,
            "count": len(expected),
            "total_count": 25,
        }
        page = raw.parse()
        assert [n.title for n in page.result] == expected

    # Default page size is 20 (kv-api.md §2 #1).
    default_page = kv(client).list(account_id=account_id, order="title")
    assert [n.title for n in default_page.result] == titles[:20]
    assert default_page.result_info.per_page == 20


def test_an_account_holds_at_most_1000_namespaces(client, account_id):
    for i in range(1000):
        kv(client).create(account_id=account_id, title=f"ns-{i:04d}")
    with pytest.raises(BadRequestError) as exc:
        kv(client).create(account_id=account_id, title="one too many")
    assert_api_error(exc.value, 400)
    page = kv(client).list(account_id=account_id, per_page=1000, order="title")
    assert [n.title for n in page.result] == [f"ns-{i:04d}" for i in range(1000)]
    # Deleting one makes room again.
    kv(client).delete(page.result[0].id, account_id=account_id)
    assert kv(client).create(account_id=account_id, title="one too many").title == "one too many"


@pytest.mark.parametrize(
    "params",
    [{"per_page": 0}, {"per_page": 1001}, {"page": 0}, {"order": "size"}, {"direction": "up"}],
)
def test_namespace_list_refuses_bad_parameters(client, account_id, params):
    with pytest.raises(BadRequestError) as exc:
        kv(client).list(account_id=account_id, **params)
    assert_api_error(exc.value, 400)


# ---- values and metadata ---------------------------------------------------------------------


def test_binary_value_round_trips_byte_for_byte(client, account_id, namespace_id):
    value = bytes(range(256)) * 4 + b"\r\n--boundary--\r\n\x00"
    put(client, account_id, namespace_id, "binary", value)
    response = kv(client).values.get("binary", account_id=account_id, namespace_id=namespace_id)
    assert response.read() == value
    assert response.headers["content-type"] == "application/octet-stream"
    assert "expiration" not in response.headers


def test_empty_value_round_trips(client, account_id, namespace_id):
    put(client, account_id, namespace_id, "empty", b"")
    assert get(client, account_id, namespace_id, "empty") == b""


def test_overwrite_replaces_value_and_metadata(client, account_id, namespace_id):
    put(client, account_id, namespace_id, "k", b"one", metadata={"v": 1}, expiration_ttl=600)
    put(client, account_id, namespace_id, "k", b"two")
    assert get(client, account_id, namespace_id, "k") == b"two"
    assert kv(client).metadata.get("k", account_id=account_id, namespace_id=namespace_id) is None
    [entry] = list_all_keys(client, account_id, namespace_id)
    assert (entry.name, entry.expiration, entry.metadata) == ("k", None, None)


@pytest.mark.parametrize("key", SPECIAL_KEYS, ids=lambda k: repr(k)[:24])
def test_special_key_names_round_trip(client, account_id, namespace_id, key):
    value = f"value of {key}".encode()
    put(client, account_id, namespace_id, key, value, metadata={"key": key})
    assert get(client, account_id, namespace_id, key) == value
    assert kv(client).metadata.get(key, account_id=account_id, namespace_id=namespace_id) == {
        "key": key
    }
    assert [k.name for k in list_all_keys(client, account_id, namespace_id)] == [key]
    assert [k.name for k in list_all_keys(client, account_id, namespace_id, prefix=key)] == [key]

    assert kv(client).values.delete(key, account_id=account_id, namespace_id=namespace_id) is None
    with pytest.raises(NotFoundError) as exc:
        get(client, account_id, namespace_id, key)
    assert_api_error(exc.value, 404, KEY_NOT_FOUND)
    assert list_all_keys(client, account_id, namespace_id) == []


def test_slash_and_escaped_slash_name_the_same_key(client, account_id, namespace_id, node):
    # SDK 5.9 sends `a%2Fb`; older SDKs send `a/b` raw (kv-api.md §3). Both are the key "a/b".
    put(client, account_id, namespace_id, "a/b", b"slash")
    raw = httpx.get(
        f"{node.url}/accounts/{account_id}/storage/kv/namespaces/{namespace_id}/values/a/b",
        headers={"Authorization": f"Bearer {node.token}"},
    )
    assert (raw.status_code, raw.content) == (200, b"slash")


def test_metadata_of_every_json_type(client, account_id, namespace_id):
    cases: list[Any] = [
        {"someMetadataKey": "someMetadataValue", "n": 1.5, "nested": {"list": [1, None, "x"]}},
        [1, 2, 3],
        42,
        True,
        '"a json string"',  # a str is sent as a text part; its JSON text is a string
    ]
    expected = cases[:4] + ["a json string"]
    for i, (metadata, want) in enumerate(zip(cases, expected, strict=True)):
        put(client, account_id, namespace_id, f"k{i}", b"v", metadata=metadata)
        got = kv(client).metadata.get(f"k{i}", account_id=account_id, namespace_id=namespace_id)
        assert got == want
    listed = {k.name: k.metadata for k in list_all_keys(client, account_id, namespace_id)}
    assert listed == {f"k{i}": want for i, want in enumerate(expected)}


def test_metadata_of_a_key_without_metadata_is_null(client, account_id, namespace_id):
    put(client, account_id, namespace_id, "plain", b"v")
    raw = kv(client).metadata.with_raw_response.get(
        "plain", account_id=account_id, namespace_id=namespace_id
    )
    assert raw.http_response.json() == {
        "success": True,
        "errors": [],
        "messages": [],
        "result": None,
    }
    [entry] = list_all_keys(client, account_id, namespace_id)
    assert entry.metadata is None


def test_metadata_limit_is_1024_bytes(client, account_id, namespace_id):
    fits = {"m": "x" * (1024 - len('{"m":""}'))}
    put(client, account_id, namespace_id, "fits", b"v", metadata=fits)
    assert kv(client).metadata.get("fits", account_id=account_id, namespace_id=namespace_id) == fits

    too_big = {"m": "x" * (1025 - len('{"m":""}'))}
    with pytest.raises(APIStatusError) as exc:
        put(client, account_id, namespace_id, "too-big", b"v", metadata=too_big)
    assert_api_error(exc.value, 413)
    assert [k.name for k in list_all_keys(client, account_id, namespace_id)] == ["fits"]


def test_expiration_ttl_becomes_an_absolute_expiration(client, account_id, namespace_id):
    before = int(time.time())
    put(client, account_id, namespace_id, "ttl", b"v", expiration_ttl=300)
    after = int(time.time())
    [entry] = list_all_keys(client, account_id, namespace_id)
    assert entry.name == "ttl"
    assert before + 300 <= entry.expiration <= after + 300
    response = kv(client).values.get("ttl", account_id=account_id, namespace_id=namespace_id)
    assert response.read() == b"v"
    assert int(response.headers["expiration"]) == entry.expiration


def test_absolute_expiration_is_kept_exactly(client, account_id, namespace_id):
    at = int(time.time()) + 3600
    put(client, account_id, namespace_id, "abs", b"v", expiration=at, metadata={"m": 1})
    [entry] = list_all_keys(client, account_id, namespace_id)
    assert (entry.name, entry.expiration, entry.metadata) == ("abs", at, {"m": 1})
    response = kv(client).values.get("abs", account_id=account_id, namespace_id=namespace_id)
    assert response.headers["expiration"] == str(at)


def test_expiration_ttl_wins_over_expiration(client, account_id, namespace_id):
    now = int(time.time())
    put(client, account_id, namespace_id, "both", b"v", expiration=now + 7200, expiration_ttl=120)
    [entry] = list_all_keys(client, account_id, namespace_id)
    assert now + 120 <= entry.expiration <= int(time.time()) + 120


BAD_EXPIRATIONS: dict[str, Callable[[int], dict[str, int]]] = {
    "ttl-30": lambda now: {"expiration_ttl": 30},
    "ttl-59": lambda now: {"expiration_ttl": 59},
    "ttl-0": lambda now: {"expiration_ttl": 0},
    "ttl-negative": lambda now: {"expiration_ttl": -60},
    "expiration-in-the-past": lambda now: {"expiration": now - 10},
    "expiration-under-60s-ahead": lambda now: {"expiration": now + 30},
}


@pytest.mark.parametrize("params", BAD_EXPIRATIONS.values(), ids=BAD_EXPIRATIONS.keys())
def test_bad_expirations_are_refused_and_nothing_is_written(
    client, account_id, namespace_id, params
):
    with pytest.raises(BadRequestError) as exc:
        put(client, account_id, namespace_id, "k", b"v", **params(int(time.time())))
    assert_api_error(exc.value, 400)
    assert "expiration" in exc.value.errors[0].message
    with pytest.raises(NotFoundError):
        get(client, account_id, namespace_id, "k")


def test_key_length_limit_is_512_bytes(client, account_id, namespace_id):
    with pytest.raises(APIStatusError) as exc:
        put(client, account_id, namespace_id, "k" * 513, b"v")
    assert_api_error(exc.value, 414)
    with pytest.raises(APIStatusError) as exc:
        put(client, account_id, namespace_id, "✓" * 171, b"v")  # 513 bytes
    assert_api_error(exc.value, 414)
    assert list_all_keys(client, account_id, namespace_id) == []


def test_value_limit_is_25_mib(client, account_id, namespace_id):
    limit = 25 * 1024 * 1024
    with pytest.raises(APIStatusError) as exc:
        put(client, account_id, namespace_id, "huge", b"x" * (limit + 1))
    assert_api_error(exc.value, 413)
    put(client, account_id, namespace_id, "max", b"y" * limit)
    assert get(client, account_id, namespace_id, "max") == b"y" * limit


def test_deleting_a_missing_key_succeeds(client, account_id, namespace_id):
    result = kv(client).values.delete(
        "never-written", account_id=account_id, namespace_id=namespace_id
    )
    assert result is None


def test_missing_key_is_not_found(client, account_id, namespace_id):
    with pytest.raises(NotFoundError) as exc:
        get(client, account_id, namespace_id, "missing")
    assert_api_error(exc.value, 404, KEY_NOT_FOUND)
    with pytest.raises(NotFoundError) as exc:
        kv(client).metadata.get("missing", account_id=account_id, namespace_id=namespace_id)
    assert_api_error(exc.value, 404, KEY_NOT_FOUND)


# ---- key listing -----------------------------------------------------------------------------

# Byte order differs from UTF-16 order ("\uff5e" < "😀" in UTF-8, not in UTF-16) and from
# case-insensitive order ("Z" < "a").
ORDER_KEYS = ["a", "Z", "z", "~", "é", "\u00ff", "\uff5e", "😀", "日本", "0", "a/b", "a b", "aa"]


def test_keys_are_listed_once_each_in_utf8_byte_order_across_pages(
    client, account_id, namespace_id
):
    names = ORDER_KEYS + [f"key-{i:02d}" for i in range(25 - len(ORDER_KEYS))]
    assert len(names) == 25
    for i, name in enumerate(names):
        put(client, account_id, namespace_id, name, str(i).encode())

    first = kv(client).keys.list(namespace_id, account_id=account_id, limit=10)
    pages = list(first.iter_pages())
    assert [len(p.result) for p in pages] == [10, 10, 5]
    assert [p.result_info.count for p in pages] == [10, 10, 5]
    assert all(p.result_info.cursor for p in pages[:-1])
    assert pages[-1].result_info.cursor == ""  # kv-api.md §4: "" when the listing is finished
    listed = [k.name for p in pages for k in p.result]
    assert listed == utf8_sorted(names)

    # Auto-pagination over the same listing.
    assert [k.name for k in first] == utf8_sorted(names)


def test_keys_cursor_by_hand_with_prefix(client, account_id, namespace_id):
    inside = [f"p/{i:02d}" for i in range(23)]
    outside = ["o", "p", "p0", "q/00", "P/00"]
    items = [{"key": k, "value": k} for k in inside + outside]
    written = kv(client).bulk_update(namespace_id, account_id=account_id, body=items)
    assert written.successful_key_count == 28

    seen: list[str] = []
    cursor: str | None = None
    requests = 0
    while True:
        kwargs = {"cursor": cursor} if cursor else {}
        raw = kv(client).keys.with_raw_response.list(
            namespace_id, account_id=account_id, prefix="p/", limit=10, **kwargs
        )
        body = raw.http_response.json()
        requests += 1
        assert body["success"] is True
        assert body["result_info"]["count"] == len(body["result"])
        seen += [entry["name"] for entry in body["result"]]
        cursor = body["result_info"]["cursor"]
        assert isinstance(cursor, str)
        if not cursor:
            break
        assert requests < 10, "the listing never finished"
    assert requests == 3
    assert seen == inside

    # A prefix that matches a whole key name includes it.
    assert [k.name for k in list_all_keys(client, account_id, namespace_id, prefix="p")] == (
        ["p", "p/00"] + inside[1:] + ["p0"]
    )
    assert list_all_keys(client, account_id, namespace_id, prefix="nothing") == []


def test_listed_entries_carry_expiration_and_metadata_only_when_set(
    client, account_id, namespace_id
):
    at = int(time.time()) + 1000
    put(client, account_id, namespace_id, "both", b"v", expiration=at, metadata={"a": 1})
    put(client, account_id, namespace_id, "meta", b"v", metadata={"b": [2]})
    put(client, account_id, namespace_id, "plain", b"v")
    put(client, account_id, namespace_id, "exp", b"v", expiration=at)
    raw = kv(client).keys.with_raw_response.list(namespace_id, account_id=account_id)
    assert raw.http_response.json()["result"] == [
        {"name": "both", "expiration": at, "metadata": {"a": 1}},
        {"name": "exp", "expiration": at},
        {"name": "meta", "metadata": {"b": [2]}},
        {"name": "plain"},
    ]
    parsed = {k.name: (k.expiration, k.metadata) for k in raw.parse()}
    assert parsed == {
        "both": (at, {"a": 1}),
        "exp": (at, None),
        "meta": (None, {"b": [2]}),
        "plain": (None, None),
    }


def test_deleted_keys_leave_the_listing(client, account_id, namespace_id):
    for i in range(30):
        put(client, account_id, namespace_id, f"k{i:02d}", b"v")
    for i in range(0, 30, 2):
        kv(client).values.delete(f"k{i:02d}", account_id=account_id, namespace_id=namespace_id)
    listed = [k.name for k in list_all_keys(client, account_id, namespace_id, limit=10)]
    assert listed == [f"k{i:02d}" for i in range(1, 30, 2)]


def test_cursor_is_stable_while_keys_change_between_pages(client, account_id, namespace_id):
    for i in range(25):
        put(client, account_id, namespace_id, f"k{i:02d}", b"v")
    first = kv(client).keys.list(namespace_id, account_id=account_id, limit=10)
    assert [k.name for k in first.result] == [f"k{i:02d}" for i in range(10)]
    # Between pages: delete the key the cursor points after, write one before it and one after.
    kv(client).values.delete("k09", account_id=account_id, namespace_id=namespace_id)
    put(client, account_id, namespace_id, "k05x", b"v")
    put(client, account_id, namespace_id, "k15x", b"v")
    rest = [k.name for page in list(first.iter_pages())[1:] for k in page.result]
    assert rest == utf8_sorted([f"k{i:02d}" for i in range(10, 25)] + ["k15x"])


def test_listing_past_many_deleted_keys_reaches_the_live_ones(client, account_id, namespace_id):
    # More deleted keys than the store's skip budget (100,000) sort before "live". The Python
    # SDK stops paginating at the first empty page (kv-api.md §4), so the server must never
    # answer an empty page with a cursor; an earlier version did, and this found it.
    dead = [f"a{i:06d}" for i in range(100_001)]
    for start in range(0, len(dead), 10_000):
        chunk = dead[start : start + 10_000]
        kv(client).bulk_update(
            namespace_id, account_id=account_id, body=[{"key": k, "value": ""} for k in chunk]
        )
        kv(client).bulk_delete(namespace_id, account_id=account_id, body=chunk)
    put(client, account_id, namespace_id, "live", b"v")
    assert [k.name for k in list_all_keys(client, account_id, namespace_id)] == ["live"]


@pytest.mark.parametrize("limit", [9, 1001])
def test_keys_list_limit_bounds(client, account_id, namespace_id, limit):
    with pytest.raises(BadRequestError) as exc:
        kv(client).keys.list(namespace_id, account_id=account_id, limit=limit)
    assert_api_error(exc.value, 400)


def test_keys_list_refuses_a_garbage_cursor(client, account_id, namespace_id):
    with pytest.raises(BadRequestError) as exc:
        kv(client).keys.list(namespace_id, account_id=account_id, cursor="!!not-a-cursor!!")
    assert_api_error(exc.value, 400)


# ---- bulk ------------------------------------------------------------------------------------

BulkCalls = dict[str, Callable[..., Any]]


def bulk_calls(client, deprecated: bool) -> BulkCalls:
    """`kv.namespaces.bulk_*` or their deprecated `kv.namespaces.keys.bulk_*` twins."""
    owner = kv(client).keys if deprecated else kv(client)

    def call(name):
        def run(*args, **kwargs):
            if deprecated:
                with pytest.deprecated_call():
                    return getattr(owner, name)(*args, **kwargs)
            return getattr(owner, name)(*args, **kwargs)

        return run

    return {name: call(name) for name in ("bulk_update", "bulk_get", "bulk_delete")}


@pytest.fixture(params=[False, True], ids=["namespaces", "keys-deprecated"])
def bulk(request, client) -> BulkCalls:
    return bulk_calls(client, deprecated=request.param)


def test_bulk_update_writes_values_metadata_and_expirations(bulk, client, account_id, namespace_id):
    binary = bytes(range(256))
    at = int(time.time()) + 3600
    before = int(time.time())
    result = bulk["bulk_update"](
        namespace_id,
        account_id=account_id,
        body=[
            {"key": "text", "value": "hello ✓"},
            {"key": "b64", "value": base64.b64encode(binary).decode(), "base64": True},
            {"key": "meta", "value": "m", "metadata": {"someMetadataKey": ["v", 1]}},
            {"key": "ttl", "value": "t", "expiration_ttl": 300},
            {"key": "abs", "value": "a", "expiration": at},
            {"key": "both", "value": "b", "expiration": at, "expiration_ttl": 120},
            {"key": "dir/with space", "value": "s"},
        ],
    )
    assert result.successful_key_count == 7
    assert result.unsuccessful_keys == []

    assert get(client, account_id, namespace_id, "text") == "hello ✓".encode()
    assert get(client, account_id, namespace_id, "b64") == binary
    assert get(client, account_id, namespace_id, "dir/with space") == b"s"
    assert kv(client).metadata.get("meta", account_id=account_id, namespace_id=namespace_id) == {
        "someMetadataKey": ["v", 1]
    }
    entries = {k.name: k for k in list_all_keys(client, account_id, namespace_id)}
    assert sorted(entries) == utf8_sorted(
        ["text", "b64", "meta", "ttl", "abs", "both", "dir/with space"]
    )
    assert entries["abs"].expiration == at
    assert before + 300 <= entries["ttl"].expiration <= int(time.time()) + 300
    assert before + 120 <= entries["both"].expiration <= int(time.time()) + 120
    assert entries["text"].expiration is None and entries["text"].metadata is None
    assert entries["meta"].metadata == {"someMetadataKey": ["v", 1]}


def test_bulk_update_with_a_bad_item_writes_nothing(bulk, client, account_id, namespace_id):
    with pytest.raises(BadRequestError) as exc:
        bulk["bulk_update"](
            namespace_id,
            account_id=account_id,
            body=[
                {"key": "good", "value": "v"},
                {"key": "bad", "value": "v", "expiration_ttl": 30},
            ],
        )
    assert_api_error(exc.value, 400)
    with pytest.raises(BadRequestError) as exc:
        bulk["bulk_update"](
            namespace_id,
            account_id=account_id,
            body=[{"key": "good", "value": "v"}, {"key": "bad", "value": "%%%", "base64": True}],
        )
    assert_api_error(exc.value, 400)
    assert list_all_keys(client, account_id, namespace_id) == []


def test_bulk_get_text_json_and_metadata(bulk, client, account_id, namespace_id):
    at = int(time.time()) + 3600
    bulk["bulk_update"](
        namespace_id,
        account_id=account_id,
        body=[
            {
                "key": "obj",
                "value": '{"a": [1, 2], "b": null}',
                "metadata": {"m": "obj"},
                "expiration": at,
            },
            {"key": "num", "value": "42"},
            {"key": "str", "value": '"quoted"', "metadata": ["x"]},
        ],
    )
    keys = ["obj", "num", "str", "missing"]

    text = bulk["bulk_get"](namespace_id, account_id=account_id, keys=keys)
    assert text.values == {
        "obj": '{"a": [1, 2], "b": null}',
        "num": "42",
        "str": '"quoted"',
        "missing": None,
    }
    explicit_text = bulk["bulk_get"](namespace_id, account_id=account_id, keys=keys, type="text")
    assert explicit_text.values == text.values

    parsed = bulk["bulk_get"](namespace_id, account_id=account_id, keys=keys, type="json")
    assert parsed.values == {
        "obj": {"a": [1, 2], "b": None},
        "num": 42,
        "str": "quoted",
        "missing": None,
    }

    with_meta = bulk["bulk_get"](
        namespace_id, account_id=account_id, keys=keys, type="json", with_metadata=True
    )
    assert with_meta.values["missing"] is None
    obj = with_meta.values["obj"]
    assert (obj.value, obj.metadata, obj.expiration) == ({"a": [1, 2], "b": None}, {"m": "obj"}, at)
    num = with_meta.values["num"]
    assert (num.value, num.metadata, num.expiration) == (42, None, None)
    assert (with_meta.values["str"].value, with_meta.values["str"].metadata) == ("quoted", ["x"])

    text_meta = bulk["bulk_get"](
        namespace_id, account_id=account_id, keys=["num"], with_metadata=True
    )
    assert (text_meta.values["num"].value, text_meta.values["num"].metadata) == ("42", None)


def test_bulk_get_wire_format(client, account_id, namespace_id):
    # The exact JSON: missing keys are null, metadata is null when absent, and `expiration`
    # appears only for expiring keys (kv-api.md §2 #14, §7).
    at = int(time.time()) + 3600
    put(client, account_id, namespace_id, "a", b"1", expiration=at, metadata={"x": 1})
    put(client, account_id, namespace_id, "b", b"2")
    raw = kv(client).with_raw_response.bulk_get(
        namespace_id, account_id=account_id, keys=["a", "b", "c"], with_metadata=True
    )
    assert raw.http_response.json()["result"] == {
        "values": {
            "a": {"value": "1", "metadata": {"x": 1}, "expiration": at},
            "b": {"value": "2", "metadata": None},
            "c": None,
        }
    }


@pytest.mark.parametrize(
    "kwargs",
    [{"keys": []}, {"keys": [f"k{i}" for i in range(101)]}, {"keys": ["k"], "type": "xml"}],
    ids=["no-keys", "101-keys", "bad-type"],
)
def test_bulk_get_refuses_bad_requests(client, account_id, namespace_id, kwargs):
    with pytest.raises(BadRequestError) as exc:
        kv(client).bulk_get(namespace_id, account_id=account_id, **kwargs)
    assert_api_error(exc.value, 400)


def test_bulk_get_total_is_limited_to_25_mib(client, account_id, namespace_id):
    half = 13 * 1024 * 1024
    put(client, account_id, namespace_id, "a", b"a" * half)
    put(client, account_id, namespace_id, "b", b"b" * half)
    with pytest.raises(APIStatusError) as exc:
        kv(client).bulk_get(namespace_id, account_id=account_id, keys=["a", "b"])
    assert_api_error(exc.value, 413)
    one = kv(client).bulk_get(namespace_id, account_id=account_id, keys=["a", "missing"])
    assert one.values == {"a": "a" * half, "missing": None}


def test_bulk_get_json_of_a_non_json_value_is_refused(client, account_id, namespace_id):
    put(client, account_id, namespace_id, "text", b"not json")
    with pytest.raises(BadRequestError) as exc:
        kv(client).bulk_get(namespace_id, account_id=account_id, keys=["text"], type="json")
    assert_api_error(exc.value, 400)


def test_bulk_delete_removes_listed_keys_and_ignores_missing_ones(
    bulk, client, account_id, namespace_id
):
    bulk["bulk_update"](
        namespace_id,
        account_id=account_id,
        body=[{"key": f"k{i}", "value": str(i)} for i in range(5)],
    )
    result = bulk["bulk_delete"](namespace_id, account_id=account_id, body=["k1", "k3", "never"])
    assert result.successful_key_count == 3
    assert result.unsuccessful_keys == []
    assert [k.name for k in list_all_keys(client, account_id, namespace_id)] == ["k0", "k2", "k4"]
    with pytest.raises(NotFoundError):
        get(client, account_id, namespace_id, "k1")
    assert get(client, account_id, namespace_id, "k2") == b"2"


def test_deprecated_delete_on_bulk_path(client, account_id, namespace_id):
    # DELETE .../bulk has no SDK method, but wrangler still sends it (kv-api.md §2 #13).
    kv(client).bulk_update(
        namespace_id, account_id=account_id, body=[{"key": k, "value": k} for k in ("a", "b", "c")]
    )
    body = client.delete(
        f"/accounts/{account_id}/storage/kv/namespaces/{namespace_id}/bulk",
        body=["a", "c"],
        cast_to=object,
    )
    assert body["success"] is True
    assert body["result"] == {"successful_key_count": 2, "unsuccessful_keys": []}
    assert [k.name for k in list_all_keys(client, account_id, namespace_id)] == ["b"]


def test_bulk_write_and_delete_of_10000_pairs(client, account_id, namespace_id):
    body = [{"key": f"k{i:05d}", "value": str(i)} for i in range(10_000)]
    written = kv(client).bulk_update(namespace_id, account_id=account_id, body=body)
    assert written.successful_key_count == 10_000
    names = [k.name for k in list_all_keys(client, account_id, namespace_id)]
    assert names == [item["key"] for item in body]

    too_many = body + [{"key": "one-more", "value": "x"}]
    with pytest.raises(BadRequestError) as exc:
        kv(client).bulk_update(namespace_id, account_id=account_id, body=too_many)
    assert_api_error(exc.value, 400)
    assert get(client, account_id, namespace_id, "k00000") == b"0"
    with pytest.raises(NotFoundError):
        get(client, account_id, namespace_id, "one-more")

    deleted = kv(client).bulk_delete(namespace_id, account_id=account_id, body=names)
    assert deleted.successful_key_count == 10_000
    assert list_all_keys(client, account_id, namespace_id) == []


# ---- what other clients put on the wire (kv-api.md §3) ------------------------------------


def raw_put(node, account_id, namespace_id, key, **kwargs) -> httpx.Response:
    return httpx.put(
        f"{node.url}/accounts/{account_id}/storage/kv/namespaces/{namespace_id}/values/{key}",
        headers={"Authorization": f"Bearer {node.token}", **kwargs.pop("headers", {})},
        **kwargs,
    )


@pytest.mark.parametrize(
    "content_type", ["application/octet-stream", "application/json", "text/plain", None]
)
def test_a_non_multipart_body_is_stored_verbatim(
    client, node, account_id, namespace_id, content_type
):
    # SDK 4.3.1 sends {"metadata": ..., "value": ...} as application/json; the real service
    # stores that whole text as the value (cloudflare-python #2519).
    body = b'{"metadata":"m","value":"v"}'
    headers = {"Content-Type": content_type} if content_type else {}
    response = raw_put(node, account_id, namespace_id, "raw", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True, "errors": [], "messages": [], "result": None}
    assert get(client, account_id, namespace_id, "raw") == body
    assert kv(client).metadata.get("raw", account_id=account_id, namespace_id=namespace_id) is None


def test_multipart_value_may_be_a_text_field(client, node, account_id, namespace_id):
    # The TypeScript SDK sends `value` as a plain form field rather than a file part.
    response = raw_put(
        node,
        account_id,
        namespace_id,
        "text-part",
        data={"value": "from a text field ✓", "metadata": '{"a": [1, 2]}'},
        files={"unused": ("x", b"ignored")},  # forces multipart/form-data
    )
    assert response.status_code == 200, response.text
    assert get(client, account_id, namespace_id, "text-part") == "from a text field ✓".encode()
    assert kv(client).metadata.get(
        "text-part", account_id=account_id, namespace_id=namespace_id
    ) == {"a": [1, 2]}


# ---- errors and credentials ------------------------------------------------------------------

MISSING_NAMESPACE_CALLS: dict[str, Callable[[Any, str, str], Any]] = {
    "namespaces.get": lambda c, a, n: kv(c).get(n, account_id=a),
    "namespaces.update": lambda c, a, n: kv(c).update(n, account_id=a, title="t"),
    "namespaces.delete": lambda c, a, n: kv(c).delete(n, account_id=a),
    "keys.list": lambda c, a, n: kv(c).keys.list(n, account_id=a),
    "values.get": lambda c, a, n: kv(c).values.get("k", account_id=a, namespace_id=n),
    "values.update": lambda c, a, n: kv(c).values.update(
        "k", account_id=a, namespace_id=n, value=b"v"
    ),
    "values.delete": lambda c, a, n: kv(c).values.delete("k", account_id=a, namespace_id=n),
    "metadata.get": lambda c, a, n: kv(c).metadata.get("k", account_id=a, namespace_id=n),
    "bulk_update": lambda c, a, n: kv(c).bulk_update(
        n, account_id=a, body=[{"key": "k", "value": "v"}]
    ),
    "bulk_get": lambda c, a, n: kv(c).bulk_get(n, account_id=a, keys=["k"]),
    "bulk_delete": lambda c, a, n: kv(c).bulk_delete(n, account_id=a, body=["k"]),
}


@pytest.mark.parametrize(
    "call", MISSING_NAMESPACE_CALLS.values(), ids=MISSING_NAMESPACE_CALLS.keys()
)
def test_every_call_on_a_missing_namespace_is_not_found(client, account_id, call):
    missing = uuid.uuid4().hex
    with pytest.raises(NotFoundError) as exc:
        call(client, account_id, missing)
    assert_api_error(exc.value, 404, NAMESPACE_NOT_FOUND)
    assert "namespace not found" in exc.value.errors[0].message


def test_wrong_token_is_permission_denied(client, node, account_id, namespace_id):
    with cloudflare.Cloudflare(base_url=node.url, api_token="wrong-token", max_retries=0) as wrong:
        with pytest.raises(PermissionDeniedError) as exc:
            kv(wrong).list(account_id=account_id)
        assert_api_error(exc.value, 403, AUTHENTICATION_ERROR)
        # The dev token is not accepted once a token is configured (unless it is the one
        # configured, as on the compose cluster the chaos suite points this at).
        if node.token != "edgekv-dev-token":
            dev = wrong.with_options(api_token="edgekv-dev-token")
            with pytest.raises(PermissionDeniedError):
                dev.kv.namespaces.keys.list(namespace_id, account_id=account_id)
        # A refused write stores nothing.
        with pytest.raises(PermissionDeniedError):
            kv(wrong).values.update(
                "k", account_id=account_id, namespace_id=namespace_id, value=b"v"
            )
    with pytest.raises(NotFoundError):
        get(client, account_id, namespace_id, "k")


def test_missing_credentials_are_refused(node, account_id):
    response = httpx.get(f"{node.url}/accounts/{account_id}/storage/kv/namespaces")
    assert response.status_code == 403
    body = response.json()
    assert body["success"] is False and body["result"] is None
    assert body["errors"][0]["code"] == AUTHENTICATION_ERROR


def test_email_and_key_pair_is_accepted(node, account_id):
    with cloudflare.Cloudflare(
        base_url=node.url, api_email="ci@example.com", api_key=node.token, max_retries=0
    ) as pair:
        created = kv(pair).create(account_id=account_id, title="via key pair")
        put(pair, account_id, created.id, "k", b"v")
        assert get(pair, account_id, created.id, "k") == b"v"
        assert [n.id for n in kv(pair).list(account_id=account_id)] == [created.id]

    with cloudflare.Cloudflare(
        base_url=node.url, api_email="ci@example.com", api_key="wrong-key", max_retries=0
    ) as wrong:
        with pytest.raises(PermissionDeniedError) as exc:
            kv(wrong).get(created.id, account_id=account_id)
        assert_api_error(exc.value, 403, AUTHENTICATION_ERROR)


def test_unknown_route_is_not_found(client, account_id):
    with pytest.raises(NotFoundError) as exc:
        client.get(
            f"/accounts/{account_id}/storage/kv/namespaces/not-a-namespace-id", cast_to=object
        )
    assert_api_error(exc.value, 404, 7003)


def test_responses_are_json_envelopes(client, account_id, namespace_id):
    raw = kv(client).with_raw_response.get(namespace_id, account_id=account_id)
    assert raw.http_response.headers["content-type"].startswith("application/json")
    body = raw.http_response.json()
    assert body["success"] is True and body["errors"] == [] and body["messages"] == []
    assert body["result"]["id"] == namespace_id
    # Failures are JSON envelopes too, even where the SDK asked for raw bytes.
    with pytest.raises(NotFoundError) as exc:
        get(client, account_id, namespace_id, "missing")
    assert exc.value.response.headers["content-type"].startswith("application/json")


def test_a_second_write_to_a_key_within_a_second_is_a_rate_limit_error(limited_node, account_id):
    """Workers KV's one write per second per key, as the SDK meets it: RateLimitError without
    retries; with its default retries the SDK waits the Retry-After and the write goes in."""
    with cloudflare.Cloudflare(
        base_url=limited_node.url, api_token=limited_node.token, max_retries=0
    ) as once:
        ns = kv(once).create(account_id=account_id, title="rate").id
        put(once, account_id, ns, "counter", b"1")
        with pytest.raises(RateLimitError) as exc:
            put(once, account_id, ns, "counter", b"2")
        assert_api_error(exc.value, 429)
        assert exc.value.response.headers["retry-after"] == "1"
        assert get(once, account_id, ns, "counter") == b"1", "a refused write is not stored"
        put(once, account_id, ns, "another-key", b"free")
    with cloudflare.Cloudflare(base_url=limited_node.url, api_token=limited_node.token) as retrying:
        started = time.monotonic()
        put(retrying, account_id, ns, "counter", b"3")
        put(retrying, account_id, ns, "counter", b"4")
        assert time.monotonic() - started >= 1.0, "the second write waited for the key"
        assert get(retrying, account_id, ns, "counter") == b"4"

