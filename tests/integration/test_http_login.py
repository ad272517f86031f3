"""test_http_login.py — the browser's way in with --token: POST /login with the bearer token sets an
HttpOnly, SameSite=Strict cookie (random per server process, not the token) that the API, the
metrics and exports accept in place of the header; ingest still takes the header only."""
import re

from batches import EXAMPLE


def login(s, token, extra=None):
    h = {"Authorization": f"Bearer {token}"} if token is not None else {}
    h.update(extra or {})
    return s.request("POST", "/login", headers=h)


def test_login_sets_a_strict_httponly_cookie(make_server):
    s = make_server("--token", "sekrit")
    assert s.ingest(EXAMPLE, headers={"Authorization": "Bearer sekrit"}).status == 202
    page = s.get("/login")
    assert page.status == 200 and b'src="/static/login.js"' in page.body
    wrong = s.request("PUT", "/login")  # its Allow names the POST it takes too (schemathesis found it missing)
    assert wrong.status == 405 and wrong.header("allow") == "GET, HEAD, POST"
    assert s.request("PUT", "/").header("allow") == "GET, HEAD"
    assert page.header("content-security-policy").startswith("default-src 'self'")
    for token in [None, "wrong", "sekrit2", ""]:
        r = login(s, token)
        assert r.status == 401 and r.json() == {"error": "unauthorized", "detail": "wrong token"}, token
        assert r.header("set-cookie") is None
    r = login(s, "sekrit")
    assert r.status == 204 and r.body == b""
    cookie = r.header("set-cookie")
    m = re.fullmatch(r"loopscope_auth=([0-9a-f]{64}); Path=/; HttpOnly; SameSite=Strict", cookie)
    assert m, cookie
    value = m.group(1)
    assert "sekrit" not in cookie
    assert login(s, "sekrit").header("set-cookie") == cookie  # one value per server process
    jar = {"Cookie": f"loopscope_auth={value}"}
    assert s.get_json("/api/v1/sessions", headers=jar)["sessions"][0]["id"] == "s-9f1c2e"
    assert s.get_json("/api/v1/sessions", headers={"Cookie": f"a=1;  loopscope_auth={value} ; b=2"})
    assert s.get("/api/v1/sessions/s-9f1c2e/export?format=chrome", headers=jar).status == 200
    assert s.get("/metrics", headers=jar).status == 200
    assert s.get_json("/api/v1/sessions", headers={"Authorization": "Bearer sekrit"})  # the header still works
    # (not an empty Cookie header nor "=": libmicrohttpd 0.9.75's own header parsing reads
    # uninitialised memory on those, with or without this server looking at cookies)
    for bad in [f"loopscope_auth={value[:-1]}", "loopscope_auth=sekrit", f"other={value}", "loopscope_auth=",
                f"loopscope_auth={value}x", f"xloopscope_auth={value}"]:
        r = s.get("/api/v1/sessions", headers={"Cookie": bad})
        assert r.status == 401, bad
        assert "Authorization: Bearer <token>" in r.json()["detail"]
    # a browser's cookie does not ingest: only collectors do, with the header
    assert s.ingest(EXAMPLE, headers=jar).status == 401
    # logout clears it in the browser
    r = login(s, None, {"X-Loopscope-Logout": "1"})
    assert r.status == 204
    assert r.header("set-cookie") == "loopscope_auth=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
    # a restarted server does not know the old cookie
    assert s.stop() == 0
    s.start()
    assert s.get("/api/v1/sessions", headers=jar).status == 401


def test_login_without_a_token(server):
    r = login(server, "anything")
    assert r.status == 404 and r.json()["detail"] == "this server has no --token: its pages need no login"
    assert server.get("/login").status == 200
