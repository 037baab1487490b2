"""With AUTOPEFT_API_KEY every endpoint but the health check and the dashboard page needs the key;
without one, none does. The dashboard page (static HTML/JS) asks the person for the key and
sends it with its API calls."""

from __future__ import annotations

import pytest

KEY = "s3cret-key"

PROTECTED = [
    ("GET", "/api/v1/studies", None),
    ("POST", "/api/v1/studies", {"name": "x"}),
    ("GET", "/api/v1/studies/1", None),
    ("GET", "/api/v1/studies/1/trials", None),
    ("GET", "/api/v1/studies/1/pareto", None),
    ("POST", "/api/v1/studies/1/stop", None),
    ("DELETE", "/api/v1/studies/1", None),
    ("POST", "/api/v1/trials/claim", {"worker_id": "w"}),
    ("GET", "/api/v1/trials/1", None),
    ("POST", "/api/v1/trials/1/heartbeat", {"lease_token": "t"}),
    ("POST", "/api/v1/trials/1/complete", {"lease_token": "t"}),
    ("POST", "/api/v1/trials/1/fail", {"lease_token": "t", "error": "e"}),
    ("POST", "/api/v1/trials/1/release", {"lease_token": "t"}),
    ("GET", "/openapi.json", None),
    ("GET", "/docs", None),
]


@pytest.fixture
def backend() -> str:
    """Auth does not depend on the database: SQLite only."""
    return "sqlite"


@pytest.fixture
def keyed(make_client):
    return make_client(api_key=KEY, proposer_enabled=False)


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic czNjcmV0LWtleQ==", f"Bearer {KEY}x", "Bearer "])
def test_without_the_right_key_every_endpoint_is_401(keyed, header):
    headers = {"Authorization": header} if header else {}
    for method, path, body in PROTECTED:
        r = keyed.request(method, path, json=body, headers=headers)
        assert r.status_code == 401, (method, path, header, r.text)
        assert r.headers["www-authenticate"] == "Bearer" and "API key" in r.json()["detail"]


def test_with_the_key_requests_pass_and_health_stays_open(keyed, study_body):
    auth = {"Authorization": f"Bearer {KEY}"}
    assert keyed.get("/api/v1/health").status_code == 200
    created = keyed.post("/api/v1/studies", json=study_body(), headers=auth)
    assert created.status_code == 201
    assert keyed.get("/api/v1/studies", headers=auth).json()["count"] == 1
    assert keyed.post("/api/v1/trials/claim", json={"worker_id": "w"}, headers=auth).status_code == 204
    assert keyed.get("/openapi.json", headers=auth).status_code == 200


def test_the_dashboard_page_opens_without_the_key_but_its_data_does_not(keyed):
    page = keyed.get("/")
    assert page.status_code == 200 and 'id="api-key"' in page.text
    assert keyed.get("/static/dashboard.js").status_code == 200
    assert keyed.get("/api/v1/studies").status_code == 401


def test_without_a_key_nothing_asks_for_one(make_client):
    open_client = make_client(proposer_enabled=False)
    assert open_client.get("/api/v1/studies").status_code == 200
    assert open_client.get("/api/v1/studies", headers={"Authorization": "Bearer anything"}).status_code == 200
    assert open_client.get("/openapi.json").status_code == 200


#: Requests that fail before their route runs: the key must still be checked first (issue 13, item 5).
BROKEN = [
    ("POST", "/api/v1/studies", b"{name: not json", "application/json"),
    ("POST", "/api/v1/studies", b'{"name": "\xff\xfe"}', "application/json"),
    ("POST", "/api/v1/trials/claim", b"[" * 5000 + b"]" * 5000, "application/json"),
    ("POST", "/api/v1/trials/abc/complete", b"{}", "application/json"),
    ("GET", "/api/v1/trials/claim", None, None),
    ("PUT", "/api/v1/studies", None, None),
    ("GET", "/api/v1/no/such/route", None, None),
    ("POST", "/api/v1/studies", b"x" * (2 << 20), "application/json"),
]


@pytest.mark.parametrize("method, path, body, content_type", BROKEN)
def test_the_key_is_checked_before_the_body_or_the_route(keyed, method, path, body, content_type):
    headers = {"content-type": content_type} if content_type else {}
    r = keyed.request(method, path, content=body, headers=headers)
    assert r.status_code == 401, (method, path, r.status_code, r.text[:300])
    assert r.headers["www-authenticate"] == "Bearer" and "API key" in r.json()["detail"]
    authorized = keyed.request(method, path, content=body, headers={**headers, "Authorization": f"Bearer {KEY}"})
    assert authorized.status_code in (404, 405, 413, 422), authorized.text[:300]
