"""The dashboard in a real headless Chromium: the plot shows the API's trials, a click shows a configuration.

Needs Debian's chromium (``.ci/run`` installs it) and the playwright package (test extra);
skips with the reason where either is missing. A screenshot of the study page is kept in
the test's tmp dir.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import live_server, report

CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium") or "") if p and Path(p).exists()), None)
playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (apt-get install chromium)")

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
KEY = "dash-key"


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def _claim(api: httpx.Client) -> dict:
    deadline = time.monotonic() + 30
    while True:
        r = api.post("/trials/claim", json={"worker_id": "w1"})
        if r.status_code == 200:
            return r.json()
        assert r.status_code == 204 and time.monotonic() < deadline, r.text
        time.sleep(0.05)


def _complete(api: httpx.Client, trial: dict, metric: float) -> None:
    assert api.post(f"/trials/{trial['id']}/complete", json=report(trial, metric)).status_code == 200


def _study(api: httpx.Client, study_body, n_done: int) -> dict:
    body = study_body(
        name="<script>alert(1)</script> RTE",
        max_trials=12,
        baselines=[{"label": "LoRA r=8", "config": {"lora": {"rank": 8}}}],
    )
    study = api.post("/studies", json=body).json()
    for i in range(n_done):
        _complete(api, _claim(api), 0.55 + 0.03 * math.sin(i))
    _claim(api)  # one running trial
    return study


@pytest.mark.slow
def test_the_plot_matches_the_api_and_a_click_shows_the_configuration(browser, db_url, study_body, tmp_path):
    with live_server(db_url) as server:
        api = httpx.Client(base_url=f"{server.url}/api/v1", timeout=30)
        study = _study(api, study_body, n_done=6)
        trials = api.get(f"/studies/{study['id']}/trials").json()["data"]
        completed = {t["id"]: t for t in trials if t["state"] == "completed"}
        pareto = api.get(f"/studies/{study['id']}/pareto").json()

        page = browser.new_page(viewport={"width": 1300, "height": 1500})
        page.goto(f"{server.url}/")
        page.wait_for_selector("#studies")
        assert "<script>alert(1)</script> RTE" in page.inner_text("#studies")  # shown as text, never run
        page.click(f"tr[data-study-id='{study['id']}']")
        page.wait_for_selector("#scatter [data-trial-id]")

        marks = page.eval_on_selector_all(
            "#scatter .point, #scatter .baseline",
            "nodes => nodes.map(n => [Number(n.dataset.trialId), Number(n.dataset.x), Number(n.dataset.y)])",
        )
        assert {m[0] for m in marks} == set(completed)
        for trial_id, x, y in marks:
            assert x == pytest.approx(completed[trial_id]["param_fraction"])
            assert y == pytest.approx(completed[trial_id]["metric"])
        assert page.locator("#scatter .baseline-label").text_content() == "LoRA r=8"
        assert page.locator("#scatter circle.running").count() == 1
        front_rows = page.eval_on_selector_all("#front tr[data-trial-id]", "rows => rows.map(r => Number(r.dataset.trialId))")
        assert sorted(front_rows) == sorted(t["id"] for t in pareto["data"])
        assert float(page.get_attribute("#hv-chart", "data-final")) == pytest.approx(pareto["hypervolume"], rel=1e-9)

        target = pareto["data"][0]
        page.click(f"#scatter [data-trial-id='{target['id']}']")
        page.wait_for_selector("#layer-table")
        assert json.loads(page.inner_text("#config-json")) == target["config"]
        assert f"{target['metric']:.4f}" in page.inner_text("#trial-numbers")
        families = page.eval_on_selector_all("#layer-table tr[data-family]", "rows => rows.map(r => r.dataset.family)")
        assert families == list(target["config"])
        # the layer cells are the API's placement: the page itself knows no family
        rows = page.eval_on_selector_all(
            "#layer-table tr[data-family]",
            "rows => rows.map(r => [r.dataset.family, [...r.querySelectorAll('td')].slice(1, -1).map(c => c.textContent)])",
        )
        n_layers = study["model_shape"]["n_layers"]
        for family, cells in rows:
            layers = target["placement"][family]["layers"]
            want = ["·"] * n_layers if layers is None else [
                ("✓" if layers[str(i)] is True else str(layers[str(i)])) if str(i) in layers else "–"
                for i in range(n_layers)
            ]
            assert cells == want, family
        front_text = page.inner_text("#front")
        assert all(t["summary"] in front_text for t in pareto["data"])

        page.click("#details button.copy")
        page.wait_for_selector("#details button.copy[data-copied]")
        assert json.loads(page.get_attribute("#details button.copy", "data-copied")) == target["config"]

        page.click("#front th[data-key='param_fraction']")  # sort the front by size, smallest first
        shown = page.eval_on_selector_all("#front tbody tr", "rows => rows.map(r => Number(r.dataset.trialId))")
        by_size = sorted(pareto["data"], key=lambda t: -t["param_fraction"])
        assert shown == [t["id"] for t in by_size] or shown == [t["id"] for t in reversed(by_size)]

        page.screenshot(path=str(tmp_path / "dashboard-study.png"), full_page=True)
        assert (tmp_path / "dashboard-study.png").stat().st_size > 10_000

        _complete(api, _claim(api), 0.9)  # the page refreshes by itself while the study runs
        page.wait_for_function(
            f"document.querySelectorAll('#scatter .point, #scatter .baseline').length === {len(completed) + 1}",
            timeout=15_000,
        )
        page.close()


def test_with_an_api_key_the_page_asks_for_it_and_then_shows_the_studies(browser, db_url, study_body):
    with live_server(db_url, api_key=KEY) as server:
        api = httpx.Client(base_url=f"{server.url}/api/v1", timeout=30, headers={"Authorization": f"Bearer {KEY}"})
        api.post("/studies", json=study_body(name="keyed study"))
        page = browser.new_page()
        page.goto(f"{server.url}/")
        page.wait_for_selector("#auth-error")
        page.fill("#api-key", KEY)
        page.click("#key-form button")
        page.wait_for_selector("#studies")
        assert "keyed study" in page.inner_text("#studies")
        assert page.evaluate("sessionStorage.getItem('autopeft.apiKey')") == KEY
        page.close()


def test_a_paused_study_shows_why_its_failures_and_resumes_from_the_page(browser, db_url, study_body, tmp_path):
    error = "Traceback (most recent call last):\n  ...\nConfigError: prefix tuning is not supported with transformers 9.0"
    with live_server(db_url, api_key=KEY) as server:
        api = httpx.Client(base_url=f"{server.url}/api/v1", timeout=30, headers={"Authorization": f"Bearer {KEY}"})
        study = api.post("/studies", json=study_body(name="broken workers", max_trials=12)).json()
        _complete(api, _claim(api), 0.6)
        for _ in range(5):
            trial = _claim(api)
            api.post(f"/trials/{trial['id']}/fail", json={"lease_token": trial["lease"]["token"], "error": error})
        assert api.get(f"/studies/{study['id']}").json()["state"] == "paused"

        page = browser.new_page(viewport={"width": 1300, "height": 1400})
        page.goto(f"{server.url}/")
        page.fill("#api-key", KEY)
        page.click("#key-form button")
        page.goto(f"{server.url}/#/study/{study['id']}")
        page.wait_for_selector("#paused")
        assert "the last 5 trials failed with: ConfigError: prefix tuning is not supported" in page.inner_text("#paused")
        assert page.inner_text("#study-summary").count("paused") == 1
        failures = page.inner_text("#failures")
        assert "Failures (5 trials, 1 cause)" in failures and "ConfigError: prefix tuning" in failures
        page.screenshot(path=str(tmp_path / "dashboard-paused.png"), full_page=True)

        page.click("#resume")
        page.wait_for_selector("#paused", state="detached")
        assert api.get(f"/studies/{study['id']}").json()["state"] == "running"
        page.close()


def test_a_stopped_study_keeps_its_queue_and_resumes_from_the_page(browser, db_url, study_body):
    """Issue 27: a stop is undoable. The page's Resume is a state-changing request from the server's own
    origin, which the Origin check lets through (tests/api/test_api_site_guard.py: another site's is refused)."""
    baselines = [{"bitfit": {}}, {"serial_adapter": {"size": 8}}]
    with live_server(db_url, proposer_enabled=False) as server:
        api = httpx.Client(base_url=f"{server.url}/api/v1", timeout=30)
        study = api.post("/studies", json=study_body(name="stopped one", max_trials=2, baselines=baselines)).json()
        assert api.post(f"/studies/{study['id']}/stop").json()["state"] == "stopped"

        page = browser.new_page()
        page.goto(f"{server.url}/#/study/{study['id']}")
        page.wait_for_selector("#stopped")
        assert "2 queued trials wait" in page.inner_text("#stopped")
        page.click("#resume")
        page.wait_for_selector("#stopped", state="detached")
        resumed = api.get(f"/studies/{study['id']}").json()
        assert resumed["state"] == "running" and resumed["counts"]["queued"] == 2
        page.close()


@pytest.mark.slow
def test_stopped_trials_and_the_learning_curve_of_a_selected_trial(browser, db_url, study_body, tmp_path):
    """Issue 16: stopped trials are drawn apart from the front, and a click shows a trial's learning curve."""
    rule = {"enabled": True, "min_peers": 1, "grace": 0.25, "margin": 0.0}
    with live_server(db_url) as server:
        api = httpx.Client(base_url=f"{server.url}/api/v1", timeout=30)
        smallest_first = [{"bitfit": {}}, {"serial_adapter": {"size": 8}}, {"prefix": {"length": 4}}]
        body = study_body(
            name="early", max_trials=4, training={"max_steps": 100}, early_stopping=rule, baselines=smallest_first
        )
        study = api.post("/studies", json=body).json()
        peer = _claim(api)
        for step, metric in ((25, 0.7), (50, 0.8), (75, 0.85)):
            api.post(f"/trials/{peer['id']}/progress", json={"lease_token": peer["lease"]["token"], "step": step,
                                                             "metric": metric})
        assert api.post(f"/trials/{peer['id']}/complete", json=report(peer, 0.85)).status_code == 200
        judged = _claim(api)
        for step, metric in ((20, 0.6), (50, 0.55)):
            answer = api.post(f"/trials/{judged['id']}/progress",
                              json={"lease_token": judged["lease"]["token"], "step": step, "metric": metric}).json()
        assert answer["continue"] is False
        stopped = api.get(f"/trials/{judged['id']}").json()
        running = _claim(api)
        within_grace = {"lease_token": running["lease"]["token"], "step": 20, "metric": 0.5}
        assert api.post(f"/trials/{running['id']}/progress", json=within_grace).json()["continue"] is True

        page = browser.new_page(viewport={"width": 1300, "height": 1500})
        page.goto(f"{server.url}/#/study/{study['id']}")
        page.wait_for_selector("#scatter [data-trial-id]")
        assert "1 stopped early" in page.inner_text("#study-summary")
        marks = page.eval_on_selector_all(
            "#scatter rect.stopped", "nodes => nodes.map(n => [Number(n.dataset.trialId), Number(n.dataset.y)])"
        )
        assert marks == [[judged["id"], stopped["metric"]]]
        front_rows = page.eval_on_selector_all("#front tr[data-trial-id]", "rs => rs.map(r => Number(r.dataset.trialId))")
        assert judged["id"] not in front_rows and peer["id"] in front_rows

        page.click(f"#scatter rect.stopped[data-trial-id='{judged['id']}']")
        page.wait_for_selector("#curve .curve-point")
        points = page.eval_on_selector_all(
            "#curve .curve-point", "nodes => nodes.map(n => [Number(n.dataset.step), Number(n.dataset.metric)])"
        )
        assert points == stopped["curve"] == [[20, 0.6], [50, 0.55]]
        assert page.locator("#curve .curve-best").count() == 1  # the best completed trial's curve, for comparison
        assert "stopped early at step 50" in page.inner_text("#trial-numbers")
        page.screenshot(path=str(tmp_path / "dashboard-stopped.png"), full_page=True)

        page.click(f"#scatter circle.running[data-trial-id='{running['id']}']")
        page.wait_for_function("document.querySelectorAll('#curve .curve-point').length === 1")
        assert "running (step 20)" in page.inner_text("#trial-numbers")
        page.close()


def test_a_budgeted_study_draws_its_budget_line(browser, db_url, study_body):
    with live_server(db_url) as server:
        api = httpx.Client(base_url=f"{server.url}/api/v1", timeout=120)  # counting the budget takes a second
        study = api.post("/studies", json=study_body(max_trials=4, constraints={"max_param_fraction": 0.3})).json()
        assert study["constraints"] == {"max_param_fraction": 0.3, "min_param_fraction": None}
        for _ in range(2):
            _complete(api, _claim(api), 0.6)
        page = browser.new_page(viewport={"width": 1300, "height": 1200})
        page.goto(f"{server.url}/#/study/{study['id']}")
        page.wait_for_selector("#scatter .budget-line", state="attached")  # a vertical line has no width
        lines = page.eval_on_selector_all("#scatter .budget-line", "ls => ls.map(l => Number(l.dataset.at))")
        assert lines == [pytest.approx(30.0)]
        assert page.locator("#scatter .budget-label").text_content() == "budget max 30.0%"
        page.close()


@pytest.mark.slow
def test_a_warm_started_study_links_its_earlier_studies_and_marks_their_configurations(
    browser, db_url, study_body, tmp_path
):
    """Issue 19: the study page names the studies it started from (links), and its warm-start trials say so."""
    with live_server(db_url) as server:
        api = httpx.Client(base_url=f"{server.url}/api/v1", timeout=30)
        earlier = api.post("/studies", json=study_body(name="earlier on SST-2", max_trials=2)).json()
        for i in range(2):
            _complete(api, _claim(api), 0.6 + 0.1 * i)
        body = study_body(name="warm MRPC", max_trials=4, warm_start={"studies": [earlier["id"]]})
        study = api.post("/studies", json=body).json()
        first = _claim(api)
        assert first["source"] == "warm_start"
        _complete(api, first, 0.7)
        _complete(api, _claim(api), 0.5)

        page = browser.new_page(viewport={"width": 1300, "height": 1300})
        page.goto(f"{server.url}/#/study/{study['id']}")
        page.wait_for_selector("#warm-start")
        note = page.inner_text("#warm-start")
        assert "Warm start from" in note and f"#{earlier['id']} earlier on SST-2" in note and "(rte, done)" in note
        assert page.get_attribute("#warm-start a", "href") == f"#/study/{earlier['id']}"
        marked = page.eval_on_selector_all("#scatter circle.warm-start", "ns => ns.map(n => Number(n.dataset.trialId))")
        assert first["id"] in marked
        assert page.locator("#legend-warm-start").count() == 1
        page.click(f"#scatter circle[data-trial-id='{first['id']}']")
        page.wait_for_selector("#trial-source")
        assert "warm start (a front configuration of an earlier study" in page.inner_text("#trial-source")
        page.screenshot(path=str(tmp_path / "dashboard-warm-start.png"), full_page=True)
        texts = page.eval_on_selector_all("#app > *", "ns => ns.map(n => n.textContent)")
        assert "null" not in [t.strip() for t in texts]  # no stray text where a study has no banner
        assert page.evaluate("[...document.getElementById('app').childNodes].some(n => n.nodeType === 3)") is False
        page.click("#warm-start a")
        page.wait_for_function("document.getElementById('study-title')?.textContent === 'earlier on SST-2'")
        assert page.query_selector("#warm-start") is None
        page.close()


@pytest.mark.slow
def test_the_front_table_copies_the_command_that_retrains_and_exports_a_point(browser, db_url, study_body):
    """Issue 30: from the plot to a model without reading docs: each front row copies `study retrain` + `export`."""
    with live_server(db_url) as server:
        api = httpx.Client(base_url=f"{server.url}/api/v1", timeout=30)
        study = _study(api, study_body, n_done=4)
        target = api.get(f"/studies/{study['id']}/pareto").json()["data"][0]
        page = browser.new_page(viewport={"width": 1300, "height": 1500})
        page.goto(f"{server.url}/#/study/{study['id']}")
        page.wait_for_selector("#front tr[data-trial-id]")
        run = f"runs/study{study['id']}-trial{target['number']}"
        expected = (
            f"autopeft study retrain {study['id']} --trial {target['number']} --save {run} --server {server.url} && "
            f"autopeft export {run} --to onnx {run}-onnx"
        )
        button = f"#front tr[data-trial-id='{target['id']}'] button.copy-command"
        assert page.inner_text(button) == "Copy export command"
        page.click(button)
        page.wait_for_selector(f"{button}[data-copied]")
        assert page.get_attribute(button, "data-copied") == expected
        assert page.locator("#details #export-command").count() == 0  # the click copied; it selected nothing
        page.click(f"#front tr[data-trial-id='{target['id']}'] td.num")
        page.wait_for_selector("#export-command")
        assert page.inner_text("#export-command") == expected
        page.close()


def test_y_axis_labels_take_the_precision_their_range_needs(browser, db_url):
    """Issue 30: a narrow metric range (0.4901 to 0.4949) labels its ticks 0.490, 0.491, ... never 0.49 repeated."""
    with live_server(db_url) as server:
        page = browser.new_page()
        page.goto(f"{server.url}/")
        page.wait_for_function("typeof tickFormat === 'function'")
        for lo, hi in [(0.4901, 0.4949), (0.2, 0.9), (0.61234, 0.61236), (0, 1.6)]:
            labels = page.evaluate(f"(() => {{ const t = linTicks({lo}, {hi}); return t.map(tickFormat(t)); }})()")
            assert len(labels) >= 2 and len(set(labels)) == len(labels), (lo, hi, labels)
            assert all(len(label.split(".")[1]) >= 2 for label in labels)
        assert page.evaluate("(() => { const t = linTicks(0.4901, 0.4949); return t.map(tickFormat(t)); })()")[:2] == [
            "0.491", "0.492"]  # fmt: skip
        page.close()
