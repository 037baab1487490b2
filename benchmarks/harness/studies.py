"""Studies through the service: created once and resumed from its database, run side by side by
every worker until done (or the deadline), then kept as records (the study, every trial, the front)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmarks.harness.phases import ExperimentError, Unfinished, past, say
from benchmarks.harness.records import load_json, machine_of, now, save_json
from benchmarks.harness.services import GpuSampler, Service, start_workers, tail, terminate


def ensure_study(svc: Service, out: Path, key: str, body: dict[str, Any]) -> int:
    """The study of ``key``: resumed from an earlier run of the same body if it is still there, else created."""
    state = out / "studies" / f"{key}.id.json"
    if state.exists():
        saved = load_json(state)
        study = svc.study_or_none(saved["id"])
        if saved["body"] == body and study is not None and study["state"] in ("running", "done"):
            c = study["counts"]
            say(f"{key}: resuming study {saved['id']} ({c['completed']} completed, {c['failed']} failed)")
            return int(saved["id"])
    study = svc.create(body)
    save_json(state, {"id": study["id"], "body": body, "created": now()})
    say(f"{key}: created study {study['id']} ({body['name']})")
    return int(study["id"])


def study_record(svc: Service, key: str, study_id: int, body: Mapping[str, Any], **fields: Any) -> dict[str, Any]:
    """What is kept of a study: its key and body, the study, every trial and the front as the server gives them,
    then ``fields``."""
    return {
        "key": key,
        "id": study_id,
        "body": body,
        "study": svc.get(f"/api/v1/studies/{study_id}"),
        "trials": svc.get(f"/api/v1/studies/{study_id}/trials")["data"],
        "pareto": svc.get(f"/api/v1/studies/{study_id}/pareto"),
        **fields,
    }


def run_batch(
    svc: Service,
    plan: Mapping[str, Any],
    out: Path,
    batch: str,
    bodies: Mapping[str, dict[str, Any]],
    force: bool,
    deadline: float | None = None,
) -> dict[str, dict[str, Any]]:
    """Run studies side by side with all the workers until every one is done; save and return their
    records (``out/studies/<key>.json``; a key whose record exists is not run again unless ``force``).

    A batch of one study runs ``autopeft worker --study ID`` (the workers leave when it is
    done); a larger batch runs workers on any study and stops them (SIGTERM) at the end.
    """
    records: dict[str, dict[str, Any]] = {}
    todo: dict[str, dict[str, Any]] = {}
    for key, body in bodies.items():
        path = out / "studies" / f"{key}.json"
        if path.exists() and not force:
            records[key] = load_json(path)
        else:
            if force:
                (out / "studies" / f"{key}.id.json").unlink(missing_ok=True)
            todo[key] = body
    if not todo:
        return records
    ids = {key: ensure_study(svc, out, key, body) for key, body in todo.items()}
    for study in svc.get("/api/v1/studies")["data"]:
        if study["state"] == "running" and study["id"] not in ids.values():
            say(f"stopping study {study['id']} ({study['name']}): left running by an interrupted run, not in {batch}")
            svc.stop(study["id"])
    started = time.monotonic()
    sampler = GpuSampler(out / "gpu" / f"{batch}.csv", plan["device"])
    workers = start_workers(svc, plan, batch, next(iter(ids.values())) if len(ids) == 1 else None)
    try:
        _watch(svc, plan, out, batch, ids, workers, started, deadline)
    finally:
        terminate(workers, 60)
        gpu = sampler.stop()
    wall = time.monotonic() - started
    machine = machine_of(plan["device"])
    for key, sid in ids.items():
        record = study_record(
            svc,
            key,
            sid,
            todo[key],
            batch=batch,
            batch_wall_seconds=wall,
            batch_studies=list(ids),
            workers=plan["workers"],
            gpu=gpu,
            machine=machine,
            finished=now(),
        )
        save_json(out / "studies" / f"{key}.json", record)
        records[key] = record
    say(f"{batch}: done in {wall / 60:.1f} min")
    return records


def _watch(
    svc: Service,
    plan: Mapping[str, Any],
    out: Path,
    batch: str,
    ids: Mapping[str, int],
    workers: list,
    started: float,
    deadline: float | None,
) -> None:
    """Say each study's progress until all are done; raise at the deadline or when the run cannot go on."""
    seen: dict[str, tuple] = {}
    while True:
        studies = {key: svc.get(f"/api/v1/studies/{sid}") for key, sid in ids.items()}
        for key, s in studies.items():
            c = s["counts"]
            mark = (c["completed"], c["failed"], c["running"], s.get("proposal_error"))
            if seen.get(key) != mark:
                seen[key] = mark
                best = f"{s['best_metric']:.4f}" if s["best_metric"] is not None else "-"
                say(
                    f"{key}: {c['completed']}/{s['max_trials']} completed, {c['failed']} failed, "
                    f"{c['running']} running, {c['queued']} queued; best {best}, hypervolume {s['hypervolume']:.3f}"
                    f" [{time.monotonic() - started:.0f} s]"
                )
                if s.get("proposal_error"):
                    say(f"{key}: proposer error: {s['proposal_error'][:300]}")
        if all(s["state"] == "done" for s in studies.values()):
            return
        if past(deadline):  # the workers give their trials back (SIGTERM); the studies stay on the server
            raise Unfinished(f"{batch}: studies not done yet")
        if any(s["state"] == "stopped" for s in studies.values()):
            raise ExperimentError(f"{batch}: a study was stopped from outside")
        if all(w.poll() is not None for w in workers):
            logs = "\n".join(tail(out / "logs" / f"{batch}-worker{i}.log", 800) for i in range(len(workers)))
            raise ExperimentError(f"{batch}: every worker exited before the studies were done:\n{logs}")
        time.sleep(plan["poll"])
