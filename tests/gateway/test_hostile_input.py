"""Malformed and hostile requests get a 4xx with a clear message, never a 500: bodies that
are not JSON, nesting orjson cannot write back, bytes that are not UTF-8 in the URL or the
headers, absurd numbers, over-long ids; and API keys where the shop set them.

What an HTTP client library refuses to send goes over a raw socket."""
from __future__ import annotations

import asyncio

import orjson
import pytest

from app.gateway.app import init_app
from tables.wire.records import MAX_ID_CHARS, MAX_TEXT_CHARS
from tests.gateway.conftest import fill

JSON = {"Content-Type": "application/json"}
EVENT = {"event_id": "e1", "user_id": "u1", "type": "view", "item_id": "i1"}
POSTS = [("/v1/events", EVENT), ("/v1/catalog", {"item_id": "i1", "title": "Drill"}),
         ("/v1/admin/model", {"action": "rollback", "version": 1})]


async def raw(client, request: bytes) -> tuple[int, bytes]:
    """Send bytes as they are; the status code and body of the answer."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    try:
        writer.write(request)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)  # Connection: close, so it ends
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


def get(target: bytes, *headers: bytes) -> bytes:
    return b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n"


def post(target: bytes, body: bytes, content_type: bytes = b"application/json") -> bytes:
    return (b"POST " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: " + content_type
            + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)


def nested(depth: int) -> bytes:
    return b"[" * depth + b"1" + b"]" * depth


@pytest.fixture
async def admin_client(aiohttp_client, settings, sink, read_model):
    return await aiohttp_client(init_app(settings.replace(admin_token="t"), sink=sink, read_model=read_model,
                                         follow_changelogs=False))


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/json; charset=latin-1",
                                          "application/jsonp"])
async def test_a_post_that_is_not_declared_json_gets_415_and_writes_nothing(admin_client, sink, content_type):
    for path, body in POSTS:
        headers = {"Authorization": "Bearer t"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        r = await admin_client.post(path, data=orjson.dumps(body), headers=headers, skip_auto_headers=["Content-Type"])
        assert r.status == 415, (path, content_type)
        assert "Content-Type: application/json" in (await r.json())["error"]
    assert sink.events == sink.catalog == sink.commands == []


async def test_json_with_or_without_a_utf8_charset_is_accepted(admin_client, sink):
    for content_type in ("application/json", "application/json; charset=utf-8", "Application/JSON; charset=UTF-8"):
        r = await admin_client.post("/v1/events", data=orjson.dumps(EVENT), headers={"Content-Type": content_type})
        assert r.status == 202, content_type
    assert len(sink.events) == 3


@pytest.mark.parametrize("depth", [100, 252, 253, 254, 255, 300, 1000, 1023, 1024, 1025, 5000])
async def test_deep_nesting_gets_400_never_500(client, sink, depth):
    bodies = [
        b'{"event_id": "e1", "user_id": "u1", "type": "view", "item_id": "i1", "extra": ' + nested(depth) + b"}",
        nested(depth),
        b'{"events": [' + nested(depth) + b"]}",
    ]
    for body in bodies:
        status, answer = await raw(client, post(b"/v1/events", body))
        assert status == 400, (depth, answer)
        assert orjson.loads(answer)["error"]
    catalog = b'{"item_id": "i1", "title": "t", "attributes": {"a": ' + nested(depth) + b"}}"
    status, answer = await raw(client, post(b"/v1/catalog", catalog))
    assert status == 400 and orjson.loads(answer)["error"]
    assert sink.events == sink.catalog == []


async def test_nesting_orjson_cannot_write_back_says_so(client):
    status, answer = await raw(client, post(b"/v1/events", b'{"events": [' + nested(300) + b"]}"))
    assert status == 400 and "over 254 levels deep" in orjson.loads(answer)["error"]


@pytest.mark.parametrize("target", [
    b"/v1/recommend?user_id=%ff%fe", b"/v1/search?q=drill%c3", b"/v1/users/%ff", b"/v1/items/%80abc",
    b"/v1/items/%ff/similar?k=2", b"/healthz?x=%fe",
])
async def test_percent_escapes_that_are_not_utf8_get_400(client, read_model, target):
    fill(read_model)
    status, answer = await raw(client, get(target))
    assert status == 400, answer
    assert "not UTF-8" in orjson.loads(answer)["error"]


async def test_utf8_escapes_and_stray_percent_signs_are_read_as_text(client, read_model):
    fill(read_model)
    status, answer = await raw(client, get(b"/v1/search?q=drill%20%E2%80%93%20hammer&user_id=%zz%4"))
    assert status == 200 and orjson.loads(answer)["query"] == "drill \u2013 hammer"
    assert orjson.loads(answer)["user_id"] == "%zz%4"
    status, answer = await raw(client, get(b"/v1/users/%zz"))
    assert status == 404 and "'%zz'" in orjson.loads(answer)["error"]


@pytest.mark.parametrize("target", [b"/v1/recommend?user_id=\xff\xfe", b"/v1/users/\xff", b"/v1/search?q=a b"])
async def test_raw_bytes_in_the_url_are_refused_by_the_parser(client, target):
    status, _ = await raw(client, get(target))
    assert status == 400


@pytest.mark.parametrize("header", [b"Authorization: Bearer \xff\xfe", b"X-API-Key: \xc3(", b"User-Agent: \x80",
                                    b"Content-Type: application/\xffjson"])
async def test_header_bytes_that_are_not_utf8_get_400(admin_client, header):
    for path in (b"/v1/admin/model", b"/v1/recommend", b"/healthz"):
        status, answer = await raw(admin_client, get(path, header))
        assert status == 400, (path, header, answer)
        assert "is not valid UTF-8" in orjson.loads(answer)["error"]


async def test_non_ascii_utf8_in_the_auth_headers_is_just_a_wrong_key(aiohttp_client, settings, sink, read_model):
    client = await aiohttp_client(init_app(settings.replace(admin_token="t", api_keys="k1"), sink=sink,
                                           read_model=read_model, follow_changelogs=False))
    status, _ = await raw(client, get(b"/v1/admin/model", "Authorization: Bearer ключ".encode()))
    assert status == 401
    status, _ = await raw(client, get(b"/v1/recommend", "X-API-Key: ключ".encode()))
    assert status == 401


@pytest.mark.parametrize("query", [
    "k=1e999", "k=" + "9" * 5000, "k=-1", "k=nan", "k=0x10", "min_price=1e999", "max_price=inf", "min_price=nan",
    "min_price=-1", "max_price=" + "9" * 400 + ".5e99999", "in_stock=maybe",
])
async def test_absurd_numbers_in_the_query_get_400_with_a_short_message(client, read_model, query):
    fill(read_model)
    for path in ("/v1/recommend", "/v1/items/a/similar", "/v1/search?q=drill"):
        url = f"{path}{'&' if '?' in path else '?'}{query}"
        r = await client.get(url)
        assert r.status == 400, (url, await r.text())
        assert len((await r.json())["error"]) < 200


@pytest.mark.parametrize("field, value", [
    ("ts", b"1" + b"0" * 30), ("ts", b"1e308"), ("ts", b"1e999"), ("ts", b"-1e308"), ("position", b"1" + b"0" * 25),
    ("position", b"-9223372036854775808"), ("position", b"1.5"), ("ts", b"NaN"), ("ts", b"Infinity"),
])
async def test_absurd_numbers_in_records_get_400(client, sink, field, value):
    """Numbers past 64 bits come out of orjson as floats (or fail to parse); each is refused."""
    body = orjson.dumps(EVENT)[:-1] + b', "' + field.encode() + b'": ' + value + b"}"
    r = await client.post("/v1/events", data=body, headers=JSON)
    assert r.status == 400, (field, value, await r.text())
    assert (await r.json())["error"] and sink.events == []


@pytest.mark.parametrize("url", [
    "/v1/recommend?user_id={long_id}", "/v1/search?q=drill&user_id={long_id}", "/v1/users/{long_id}",
    "/v1/items/{long_id}", "/v1/items/{long_id}/similar", "/v1/recommend?category={long_text}",
    "/v1/search?q={long_query}",
])
async def test_ids_and_texts_over_their_limits_get_400(client, read_model, url):
    fill(read_model)
    ok = url.format(long_id="u" * MAX_ID_CHARS, long_text="c" * MAX_TEXT_CHARS, long_query="q" * 512)
    assert (await client.get(ok)).status in (200, 404)
    too_long = url.format(long_id="u" * (MAX_ID_CHARS + 1), long_text="c" * (MAX_TEXT_CHARS + 1),
                          long_query="q" * 513)
    r = await client.get(too_long)
    assert r.status == 400
    assert "is longer than" in (await r.json())["error"]


async def test_an_over_long_request_line_or_header_gets_a_4xx(client):
    status, _ = await raw(client, get(b"/v1/search?q=" + b"a" * 9000))
    assert 400 <= status < 500
    status, _ = await raw(client, get(b"/healthz", b"X-Junk: " + b"a" * 9000))
    assert 400 <= status < 500


@pytest.fixture
async def keyed_client(aiohttp_client, settings, sink, read_model):
    fill(read_model)
    app = init_app(settings.replace(api_keys="key-one, key-two", admin_token="t"), sink=sink, read_model=read_model,
                   follow_changelogs=False)
    return await aiohttp_client(app)


KEYED_GETS = ["/v1/search?q=drill", "/v1/recommend?user_id=s0", "/v1/users/s0", "/v1/items/b", "/v1/items/a/similar",
              "/v1/items/popular", "/v1/no-such-route"]


async def test_with_api_keys_set_the_intake_and_read_routes_need_one(keyed_client, sink):
    for headers in ({}, {"X-API-Key": "wrong"}, {"X-API-Key": "key-one, key-two"}, {"X-API-Key": ""},
                    {"Authorization": "Bearer key-one"}):
        for url in KEYED_GETS:
            r = await keyed_client.get(url, headers=headers)
            assert r.status == 401, (url, headers)
            assert "X-API-Key" in (await r.json())["error"]
        for path, body in POSTS[:2]:
            r = await keyed_client.post(path, data=orjson.dumps(body), headers={**JSON, **headers})
            assert r.status == 401
    assert sink.events == sink.catalog == []
    for key in ("key-one", "key-two"):
        for url in KEYED_GETS[:-1]:
            assert (await keyed_client.get(url, headers={"X-API-Key": key})).status == 200, url
        assert (await keyed_client.get(KEYED_GETS[-1], headers={"X-API-Key": key})).status == 404
        for path, body in POSTS[:2]:
            r = await keyed_client.post(path, data=orjson.dumps(body), headers={**JSON, "X-API-Key": key})
            assert r.status == 202
    assert len(sink.events) == len(sink.catalog) == 2


@pytest.mark.parametrize("target", [b"/v1%2Fitems%2Fpopular", b"/v1/items%2Fpopular", b"//v1/items/popular",
                                    b"/v1/./items/popular", b"/x/../v1/items/popular", b"/%761/items/popular",
                                    b"/V1/items/popular", b"/v1/items/popular/", b"/v1/admin/../items/popular"])
async def test_no_spelling_of_a_path_reaches_a_keyed_route_without_a_key(keyed_client, target):
    status, _ = await raw(keyed_client, get(target))
    assert status in (401, 404), target


async def test_probes_metrics_the_api_document_and_admin_need_no_api_key(keyed_client, sink):
    for url in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert (await keyed_client.get(url)).status == 200, url
    r = await keyed_client.get("/v1/admin/model", headers={"Authorization": "Bearer t"})
    assert r.status == 200
    assert (await keyed_client.get("/v1/admin/model", headers={"X-API-Key": "key-one"})).status == 401
    r = await keyed_client.post("/v1/admin/model", data=orjson.dumps({"action": "rollback", "version": 1}),
                                headers={**JSON, "Authorization": "Bearer t"})
    assert r.status == 202 and len(sink.commands) == 1


async def test_without_api_keys_the_routes_stay_open(client, read_model):
    fill(read_model)
    for url in KEYED_GETS[:-1]:
        assert (await client.get(url)).status == 200, url


async def test_the_api_document_describes_keys_and_limits(client):
    spec = await (await client.get("/openapi.json")).json()
    scheme = spec["components"]["securitySchemes"]["apiKey"]
    assert scheme == {**scheme, "type": "apiKey", "in": "header", "name": "X-API-Key"}
    for path, item in spec["paths"].items():
        for method, op in item.items():
            keyed = path.startswith("/v1/") and not path.startswith("/v1/admin/")
            assert ({"apiKey": []} in op.get("security", [])) == keyed, (path, method)
            assert ("401" in op["responses"]) == (keyed or path.startswith("/v1/admin/")), (path, method)
            if method == "post":
                assert "415" in op["responses"]
    user_id = spec["paths"]["/v1/recommend"]["get"]["parameters"][0]
    assert user_id["schema"]["maxLength"] == MAX_ID_CHARS
    assert "candidates" in spec["paths"]["/v1/items/{item_id}/similar"]["get"]["description"]
