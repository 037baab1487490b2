"""Fairness (issue 27): a normal study's claims while heavy studies are created and propose.

Starts `autopeft serve` (SQLite, its proposer process, default settings) and measures, twice:

- quiet: a new ``sobol`` study on the bundled model; the time from its POST to its first trial (the first
  proposal), then ``--seconds`` of simulated workers claiming and completing its trials at once
  (:func:`benchmarks.server.claim_loop`, in this process: true parameter counts), claim latency p50/p99;
- loaded: the same, while three heavy studies propose: two ``saas`` studies at the optimizer limits on the
  ``full`` space and one ``gp`` study on the largest space the build limit admits (a 256-layer model,
  8 layer groups, four families), each fed by a worker that claims and reports at once, so that every
  one keeps running model rounds. The issue's own bodies (256 layers with 255 groups; saas with
  4096/4096/10) are sent first and their answers timed: they are refused now.

Writes benchmarks/results/fairness.json (docs/server.md, "Fairness").

    python -m benchmarks.fairness --seconds 30
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Self

from benchmarks.harness.phases import ExperimentError, say
from benchmarks.harness.records import ROOT, command_line, machine, now, save_json, versions
from benchmarks.harness.services import Service
from benchmarks.server import claim_loop, summarise

#: SAAS at the limits of the server (MAX_NUTS_STEPS), modelling from its 4th result on.
HEAVY_SAAS = {"method": "saas", "saas_warmup": 512, "saas_samples": 512, "saas_max_tree_depth": 3, "n_initial": 4}
#: Four families of 7-8 sizes each (the issue's expensive body places them on 255 layer groups).
FAMILIES = {
    "serial_adapter": {"size": [0, 2, 4, 8, 16, 32, 64, 128]},
    "parallel_adapter": {"size": [0, 2, 4, 8, 16, 32, 64, 128]},
    "prefix": {"length": [0, 1, 2, 4, 8, 16, 32]},
    "lora": {"rank": [0, 1, 2, 4, 8, 16, 32]},
}


def _deep_model() -> dict[str, Any]:
    """The bundled model's config.json with 256 layers (the most the server takes)."""
    from autopeft.encoder import bundled_model_dir, read_config_json

    return {**read_config_json(bundled_model_dir()), "num_hidden_layers": 256}


def _body(name: str, **fields: Any) -> dict[str, Any]:
    body = {
        "name": name,
        "task": "rte",
        "space": "autopeft",
        "optimizer": {"method": "sobol"},
        "max_trials": 20_000,
        "training": {"max_steps": 1},
        "seed": 0,
    }
    return {**body, **fields}


def issue_bodies() -> dict[str, dict[str, Any]]:
    """The two bodies of the issue, as sent: each took the service down for minutes before."""
    space = {"name": "expensive", "groups": 255, "families": FAMILIES}
    return {
        "expensive space": _body("expensive", model="/models/deep", model_config=_deep_model(), space=space),
        "saas 4096/4096/10": _body(
            "saas heavy",
            optimizer={"method": "saas", "saas_warmup": 4096, "saas_samples": 4096, "saas_max_tree_depth": 10},
        ),
    }


def heavy_bodies() -> list[dict[str, Any]]:
    """Three studies as heavy as the server admits."""
    space = {"name": "wide", "groups": 8, "families": FAMILIES}
    return [
        _body("heavy saas 1", space="full", optimizer=HEAVY_SAAS),
        _body("heavy saas 2", space="full", optimizer={**HEAVY_SAAS, "saas_max_tree_depth": 2, "saas_warmup": 1024}),
        _body(
            "heavy gp 256 layers",
            model="/models/deep",
            model_config=_deep_model(),
            space=space,
            optimizer={"method": "gp", "n_initial": 4},
        ),
    ]


class Feeder:
    """A worker per heavy study that claims and reports at once (true counts), so the study keeps proposing."""

    def __init__(self, svc: Service, studies: list[dict[str, Any]]) -> None:
        self.svc, self.studies = svc, studies
        self.stop = threading.Event()
        self.reported = dict.fromkeys((s["id"] for s in studies), 0)
        self.threads = [threading.Thread(target=self._run, args=(s,), daemon=True) for s in studies]

    def __enter__(self) -> Self:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)

    def _run(self, study: dict[str, Any]) -> None:
        import httpx

        from autopeft.accounting import estimate
        from autopeft.api.study_spec import shape_from_hf_config

        shape = shape_from_hf_config(study["hf_config"], 2)
        http = httpx.Client(base_url=self.svc.url, timeout=60)
        try:
            while not self.stop.is_set():
                r = http.post(
                    "/api/v1/trials/claim", json={"worker_id": f"feeder-{study['id']}", "study_id": study["id"]}
                )
                if r.status_code != 200:
                    self.stop.wait(0.2)
                    continue
                trial = r.json()
                count = estimate(trial["config"], shape)
                body = {
                    "lease_token": trial["lease"]["token"],
                    "metric": 0.5 + (trial["number"] % 37) / 100,
                    "peft_params": count.peft_params,
                    "param_fraction": count.param_fraction,
                }
                done = http.post(f"/api/v1/trials/{trial['id']}/complete", json=body)
                if done.status_code == 422:  # more parameters than the backbone: a failed trial, as a worker says
                    body = {"lease_token": body["lease_token"], "error": f"refused: {done.json()['detail'][:80]}"}
                    http.post(f"/api/v1/trials/{trial['id']}/fail", json=body)
                self.reported[study["id"]] += 1
        finally:
            http.close()


def round_processes(root: int) -> int:
    """Model rounds running now below the server ``root``: processes of the proposer's fork server (Linux /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    below, todo = set(), [root]
    while todo:
        pid = todo.pop()
        kids = [c for c, p in parents.items() if p == pid and c not in below]
        below.update(kids)
        todo += kids
    forked = []
    for pid in below:
        try:
            if b"forkserver" in Path(f"/proc/{pid}/cmdline").read_bytes():
                forked.append(pid)
        except OSError:
            continue
    return max(0, len(forked) - 1)  # the fork server itself


def first_proposal_s(svc: Service, body: dict[str, Any]) -> tuple[int, float]:
    """Create a study; seconds from its POST until a claim gets its first trial (given back at once)."""
    t0 = time.monotonic()
    study_id = svc.create(body)["id"]
    while time.monotonic() - t0 < 300:
        r = svc.http.post("/api/v1/trials/claim", json={"worker_id": "first", "study_id": study_id})
        if r.status_code == 200:
            took = time.monotonic() - t0
            trial = r.json()
            svc.http.post(f"/api/v1/trials/{trial['id']}/release", json={"lease_token": trial["lease"]["token"]})
            return study_id, round(took, 3)
        time.sleep(0.02)
    raise ExperimentError(f"study {study_id} got no trial within 300 s")


def measure(svc: Service, label: str, seconds: float, workers: int) -> dict[str, Any]:
    """A new sobol study's first proposal and its claim latency under ``workers`` simulated workers."""
    study_id, first = first_proposal_s(svc, _body(f"normal {label}"))
    gp_id, gp_first = first_proposal_s(svc, _body(f"new gp {label}", optimizer={"method": "gp"}))
    svc.stop(gp_id)
    say(f"{label}: first proposal of a new sobol study after {first} s, of a new gp study after {gp_first} s")
    from autopeft.shape import model_shape

    names = [f"normal-{label}-{i}" for i in range(workers)]
    rec = claim_loop(svc.port, study_id, model_shape(None), names, time.perf_counter() + 0.1, seconds, 2.0)
    out = {"first_proposal_s": first, "gp_first_proposal_s": gp_first, **summarise(rec, seconds)}
    say(f"{label}: claim p50 {out['claim_p50_ms']} ms, p99 {out['claim_p99_ms']} ms, {out['cycles_per_s']} cycles/s")
    svc.stop(study_id)
    return out


def refused(svc: Service) -> dict[str, Any]:
    out = {}
    for name, body in issue_bodies().items():
        t0 = time.monotonic()
        r = svc.http.post("/api/v1/studies", json=body)
        out[name] = {
            "status": r.status_code,
            "seconds": round(time.monotonic() - t0, 3),
            "detail": r.json().get("detail") if r.status_code != 201 else None,
        }
        say(f"the issue's {name} body: {r.status_code} after {out[name]['seconds']} s")
    return out


def wait_modelled(svc: Service, studies: list[dict[str, Any]], timeout: float) -> None:
    """Until each heavy study has the results its model starts from (4 completed or failed trials)."""
    end = time.monotonic() + timeout
    for s in studies:
        while True:
            counts = svc.get(f"/api/v1/studies/{s['id']}")["counts"]
            if counts["completed"] + counts["failed"] >= 4:
                break
            if time.monotonic() > end:
                raise ExperimentError(f"heavy study {s['id']} did not reach 4 results in {timeout:.0f} s")
            time.sleep(0.2)


def run(seconds: float, workers: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="autopeft-fairness-") as tmp, Service(Path(tmp)) as svc:
        warm_id, started_s = first_proposal_s(svc, _body("warm-up"))  # the proposer's start (its imports)
        svc.stop(warm_id)
        say(f"the first proposal after the server started came after {started_s} s")
        quiet = measure(svc, "quiet", seconds, workers)
        issue = refused(svc)
        t0 = time.monotonic()
        heavy = [svc.create(b) for b in heavy_bodies()]
        created_s = round(time.monotonic() - t0, 3)
        say(f"created {len(heavy)} heavy studies in {created_s} s")
        with Feeder(svc, [svc.get(f"/api/v1/studies/{h['id']}") | {"hf_config": _config_of(h)} for h in heavy]) as f:
            wait_modelled(svc, heavy, 120)
            sampler = threading.Thread(target=_sample_rounds, args=(svc.proc.pid, samples := [], f.stop), daemon=True)
            sampler.start()
            loaded = measure(svc, "loaded", seconds, workers)
            loaded["model_rounds_running"] = {"min": min(samples, default=0), "max": max(samples, default=0),
                                              "samples": len(samples)}  # fmt: skip
            events = {h["name"]: svc.get(f"/api/v1/studies/{h['id']}/events")["data"] for h in heavy}
            errors = {h["name"]: svc.get(f"/api/v1/studies/{h['id']}")["proposal_error"] for h in heavy}
            if any(errors.values()):  # a heavy study that does not propose would make the figures meaningless
                raise ExperimentError(f"a heavy study's proposals failed: {errors}")
            reported = dict(f.reported)
        for h in heavy:
            svc.stop(h["id"])
    return {
        "first_proposal_after_start_s": started_s,
        "quiet": quiet,
        "loaded": loaded,
        "issue_bodies": issue,
        "heavy": [
            {
                "name": h["name"],
                "optimizer": h["optimizer"],
                "space": h["space_name"],
                "trials_reported": reported[h["id"]],
                "events": _kinds(events[h["name"]]),
                "first_event": (events[h["name"]] or [{}])[0].get("message"),
            }
            for h in heavy
        ],
        "heavy_created_s": created_s,
        "p99_ratio": _ratio(loaded["claim_p99_ms"], quiet["claim_p99_ms"]),
        "p50_ratio": _ratio(loaded["claim_p50_ms"], quiet["claim_p50_ms"]),
    }


def _sample_rounds(root: int, out: list[int], stop: threading.Event) -> None:
    while not stop.wait(1.0):
        out.append(round_processes(root))


def _config_of(study: dict[str, Any]) -> dict[str, Any]:
    """The HF config a heavy study's counts are computed on (its model_config, or the bundled model's)."""
    from autopeft.encoder import bundled_model_dir, read_config_json

    return _deep_model() if study.get("model") == "/models/deep" else read_config_json(bundled_model_dir())


def _kinds(events: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for e in events:
        out[e["kind"]] = out.get(e["kind"], 0) + 1
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=30.0, help="claiming per phase")
    p.add_argument("--workers", type=int, default=4, help="simulated workers of the normal study")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "fairness.json")
    args = p.parse_args(argv)
    result = run(args.seconds, args.workers)
    result.update(
        benchmark="fairness",
        command=command_line(argv),
        date=now(),
        machine=machine("cpu"),
        versions=versions(),
        targets={"p99_ratio_at_most": 2.0, "first_proposal_s_at_most": 5.0},
    )
    save_json(args.out, result)
    q, lo = result["quiet"], result["loaded"]
    print("| | first proposal s | new gp study s | claim p50 ms | claim p99 ms | cycles/s |\n|---|---|---|---|---|---|")
    for name, r in (("quiet", q), ("3 heavy studies", lo)):
        print(
            f"| {name} | {r['first_proposal_s']} | {r['gp_first_proposal_s']} | {r['claim_p50_ms']} | "
            f"{r['claim_p99_ms']} | {r['cycles_per_s']} |"
        )
    print(f"p99 loaded/quiet: {result['p99_ratio']}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
