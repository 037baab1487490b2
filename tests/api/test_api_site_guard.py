"""Issue 27: a page of another site, open in a browser on the server's machine, must not change studies, and a
foreign Host (DNS rebinding) is refused, with or without an API key."""

from __future__ import annotations

import pytest

from autopeft.api.middleware import same_origin, split_host
from tests.api.conftest import claim

EVIL = {"Origin": "http://evil.example", "Host": "attacker.example"}


def _study(client, study_body) -> dict:
    baselines = [{"bitfit": {}}, {"serial_adapter": {"size": 8}}]
    return client.post("/api/v1/studies", json=study_body(max_trials=2, baselines=baselines)).json()


def test_the_reproduction_a_bodyless_cross_site_stop_changes_nothing(make_client, study_body):
    client = make_client(proposer_enabled=False)
    study = _study(client, study_body)
    r = client.post(f"/api/v1/studies/{study['id']}/stop", headers=EVIL)
    assert r.status_code == 400 and "--allowed-hosts" in r.json()["detail"], r.text
    r = client.post(f"/api/v1/studies/{study['id']}/stop", headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and "cross-site request refused" in r.json()["detail"], r.text
    for origin in ("null", "http://testserver.evil.example", "http://testserver:8080", "file://"):
        assert client.post(f"/api/v1/studies/{study['id']}/stop", headers={"Origin": origin}).status_code == 403
    assert client.delete(f"/api/v1/studies/{study['id']}", headers={"Origin": "http://evil.example"}).status_code == 403
    after = client.get(f"/api/v1/studies/{study['id']}").json()
    assert after["state"] == "running" and after["counts"]["queued"] == 2


def test_the_server_own_pages_and_clients_without_an_origin_may_change_state(make_client, study_body):
    client = make_client(proposer_enabled=False)
    study = _study(client, study_body)
    own = client.post(f"/api/v1/studies/{study['id']}/stop", headers={"Origin": "http://testserver"})
    assert own.status_code == 200 and own.json()["state"] == "stopped"
    assert client.post(f"/api/v1/studies/{study['id']}/resume").status_code == 200  # the CLI sends no Origin
    assert claim(client, "w", study["id"]).status_code == 200  # nor does a worker


def test_reads_from_any_origin_pass_but_not_from_a_foreign_host(make_client, study_body):
    client = make_client(proposer_enabled=False)
    assert client.get("/api/v1/studies", headers={"Origin": "http://evil.example"}).status_code == 200
    for path in ("/api/v1/studies", "/api/v1/health", "/"):
        assert client.get(path, headers={"Host": "attacker.example:8000"}).status_code == 400
    for host in ("localhost", "127.0.0.1:9", "[::1]:8000"):  # loopback names are always answered
        assert client.get("/api/v1/health", headers={"Host": host}).status_code == 200


def test_the_checks_hold_with_an_api_key_and_come_before_it(make_client, study_body):
    client = make_client(proposer_enabled=False, api_key="k")
    auth = {"Authorization": "Bearer k"}
    assert client.get("/api/v1/studies", headers={**auth, "Host": "attacker.example"}).status_code == 400
    r = client.post("/api/v1/studies/1/stop", headers={**auth, "Origin": "http://evil.example"})
    assert r.status_code == 403


def test_allowed_hosts_adds_names_and_a_star_answers_any(make_client):
    named = make_client(proposer_enabled=False, allowed_hosts=["testserver", "box.example"])
    assert named.get("/api/v1/health", headers={"Host": "box.example:8000"}).status_code == 200
    assert named.get("/api/v1/health", headers={"Host": "other.example"}).status_code == 400
    star = make_client(proposer_enabled=False, allowed_hosts=["*"])
    assert star.get("/api/v1/health", headers={"Host": "other.example"}).status_code == 200


@pytest.mark.parametrize(
    "origin, host, same",
    [
        ("http://127.0.0.1:8000", "127.0.0.1:8000", True),
        ("http://LOCALHOST:8000", "localhost:8000", True),
        ("http://[::1]:8000", "[::1]:8000", True),
        ("https://studies.example", "studies.example", True),  # TLS at a proxy that keeps the Host
        ("http://studies.example:80", "studies.example", True),
        ("http://127.0.0.1:8001", "127.0.0.1:8000", False),
        ("http://studies.example:8443", "studies.example", False),
        ("http://evil.example", "127.0.0.1:8000", False),
        ("null", "127.0.0.1:8000", False),
        ("http://127.0.0.1:99999", "127.0.0.1:8000", False),
    ],
)
def test_same_origin(origin, host, same):
    assert same_origin(origin, host) is same


def test_split_host():
    assert split_host("Box.Example:8000") == ("box.example", 8000)
    assert split_host("[::1]") == ("::1", None) and split_host("localhost") == ("localhost", None)
    assert split_host("a:b") == ("a", -1)
