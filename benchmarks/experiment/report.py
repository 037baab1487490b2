"""The results experiment's report: its plots, docs/results.md (the CPU section first, then the GPU
page) and ``summary.json``, written from what the phases saved. The page's prose is in the templates
``benchmarks/templates/results_*.md.j2``; this module gives them the numbers, formatted. A dry run or
a run that is not on a GPU is never presented as results."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.experiment.analysis import load_results, study_digest, summarise
from benchmarks.experiment.plan import is_real, profile_of
from benchmarks.harness.analysis import completed, config_summary, fmt_mean, mean_std
from benchmarks.harness.phases import say
from benchmarks.harness.records import DOCS, RESULTS, ROOT, load_json, save_json
from benchmarks.harness.reference import METHODS, TASK_LABELS
from benchmarks.harness.report import demote, pct, render, say_targets, table

REAL_DOC = DOCS / "results.md"
REAL_PUBLISH = RESULTS / "gpu"
CPU_PUBLISH = RESULTS / "cpu"
ONE_COMMAND = "python -m benchmarks.gpu_experiment --device cuda --out runs/gpu"
DRY_COMMAND = "python -m benchmarks.gpu_experiment --dry-run --out /tmp/gpu_dry"
CPU_BEGIN = "<!-- results on CPU: python -m benchmarks.gpu_experiment --profile cpu -->"
CPU_END = "<!-- end of the results on CPU -->"


def make_plots(
    results: Mapping[str, Any], summary: Mapping[str, Any], plot_dir: Path, label: str | None
) -> dict[str, Path]:
    """Every PNG of the report; ``label`` (e.g. "CPU DRY RUN") is printed on each figure."""
    from benchmarks import plots

    prof = profile_of(results["meta"]["plan"])
    name = prof["label"]
    base = summary["baselines"].get(prof["task"], [])
    search_b = [
        {"label": b["label"], "param_fraction": b["param_fraction"], "metric": mean_std(b["search"])[0]} for b in base
    ]
    dev_b = [
        {
            "label": b["label"],
            "param_fraction": b["param_fraction"],
            "metric": mean_std(b["dev"][b["metric_name"]])[0],
            "std": mean_std(b["dev"][b["metric_name"]])[1],
        }
        for b in base
    ]
    made: dict[str, Path] = {}
    for key, record in results["studies"].items():
        pts = [(t["param_fraction"], t["metric"]) for t in completed(record["trials"])]
        made[f"front-{key}"] = plots.plot_front(
            plot_dir / f"front-{key}.png",
            pts,
            title=f"{key}: {len(pts)} completed trials, metric on the held-out slice of {name} train",
            ylabel=f"{name} search accuracy (held-out slice of train)",
            baselines=search_b,
            note=label,
        )
    retrained = {c["label"]: c for c in summary.get("retrained", [])}
    gpu = results["meta"]["plan"].get("profile", "gpu") == "gpu"
    # the CPU profile: a dev front per search (gp and its sobol control); the GPU profile: one of the gp studies
    for key, front in ({} if gpu else summary.get("dev_fronts", {})).items():
        mine = [retrained[c] for c in front["configs"]]
        made[f"dev-front-{key}"] = plots.plot_front(
            plot_dir / f"dev-front-{key}.png",
            [(c["param_fraction"], c["dev_mean"]) for c in mine],
            errors=[c["dev_std"] for c in mine],
            title=f"{name} dev: the front of {key} retrained (mean ± std over seeds) and the 8 baselines",
            ylabel=f"{name} dev accuracy",
            baselines=dev_b,
            note=label,
        )
    if retrained and gpu:
        gp_dev = [c for c in retrained.values() if any(s.split("#")[0] in prof["front_studies"] for s in c["sources"])]
        made["front-dev"] = plots.plot_front(
            plot_dir / "front-dev.png",
            [(c["param_fraction"], c["dev_mean"]) for c in gp_dev],
            errors=[c["dev_std"] for c in gp_dev],
            title=f"{name} dev: Pareto configurations of the gp studies retrained (mean ± std over seeds)",
            ylabel=f"{name} dev accuracy",
            baselines=dev_b,
            note=label,
        )
    pair = (f"{prof['task']}-autopeft-gp", f"{prof['task']}-autopeft-sobol")
    curves = {k: v for k, v in summary["curves"].items() if k in pair}
    if curves:
        made["hypervolume"] = plots.plot_hypervolume(
            plot_dir / "hypervolume.png",
            curves,
            title=f"{name}, autopeft space: hypervolume over trials, gp vs sobol",
            note=label,
        )
    tp = results.get("throughput")
    if tp:
        made["throughput"] = plots.plot_throughput(
            plot_dir / "throughput.png",
            tp["alone"],
            title=f"Training examples/s alone on the device ({tp['steps']} steps)",
            note=label,
        )
    return made


def _dev_cell(dev: Mapping[str, Sequence[float]]) -> str:
    return " / ".join(fmt_mean(v) for v in dev.values()) if dev else "-"


def _baselines_table(summary: Mapping[str, Any], task: str, name: str) -> dict[str, Any] | None:
    base = summary["baselines"]
    if not base:
        return None
    tasks = sorted(base, key=lambda t: t != task)  # the search task first
    header = ["method", "trained params"]
    header += [f"{TASK_LABELS[t]} dev {' / '.join(base[t][0]['dev'])}" for t in tasks] + [f"{name} search"]
    rows = []
    for m in dict.fromkeys(b["method"] for t in tasks for b in base[t]):
        first = next(b for t in tasks for b in base[t] if b["method"] == m)
        cells = [METHODS[m][0], pct(first["param_fraction"])]
        for t in tasks:
            b = next((b for b in base[t] if b["method"] == m), None)
            cells.append(_dev_cell(b["dev"]) if b else "-")
        own = next((b for b in base.get(task, []) if b["method"] == m), None)
        rows.append([*cells, fmt_mean(own["search"]) if own else "-"])
    seeds = sorted({s for t in tasks for b in base[t] for s in b["seeds"]})
    return {"seeds": seeds, "table": table(header, rows)}


def _studies_tables(results: Mapping[str, Any], links: Mapping[str, str]) -> dict[str, Any] | None:
    if not results["studies"]:
        return None
    rows, fronts = [], []
    for key, r in results["studies"].items():
        d = study_digest(r)
        gpu = d["gpu"] or {}
        util = (
            f"{gpu['utilization_mean']:.0f}% (max mem {gpu['memory_max_mib']:.0f} MiB)"
            if gpu.get("samples")
            else gpu.get("note", "-")
        )
        med = f"{d['trial_seconds_median']:.0f}" if d["trial_seconds_median"] is not None else "-"
        wall = f"{d['batch_wall_seconds'] / 60:.1f}"
        rows.append([key, d["completed"], d["failed"], f"{d['hypervolume']:.4f}", d["front"], wall, med, util])
        front = r["pareto"]["data"]
        front_rows = [
            [
                t["number"],
                config_summary(t["config"]),
                pct(t["param_fraction"]),
                f"{t['metric']:.4f}",
                f"{t['duration_s'] or 0:.0f}",
            ]
            for t in front
        ]
        header = ["#", "configuration", "trained params", "search", "trial s"]
        fronts.append(
            {"key": key, "count": len(front), "table": table(header, front_rows), "link": links.get(f"front-{key}")}
        )
    header = ["study", "completed", "failed", "hypervolume", "front size", "wall min", "median trial s"]
    return {"table": table([*header, "GPU utilisation mean"], rows), "fronts": fronts}


def _hypervolume_table(summary: Mapping[str, Any], task: str, links: Mapping[str, str]) -> dict[str, Any] | None:
    hv = summary.get("hypervolume")
    if not hv:
        return None
    gp, sobol = summary["curves"][f"{task}-autopeft-gp"], summary["curves"][f"{task}-autopeft-sobol"]
    marks = sorted({m for m in (5, 10, 20, 30, 40, 60, hv["trials"]) if m <= hv["trials"]})
    rows = [[m, f"{gp[m - 1]:.4f}", f"{sobol[m - 1]:.4f}"] for m in marks]
    return {"table": table(["trials", "gp hypervolume", "sobol hypervolume"], rows), "link": links.get("hypervolume")}


def _retrain_table(results, summary, prof, links) -> dict[str, Any] | None:
    retrain = results.get("retrain")
    if not retrain:
        return None
    agg = {a["label"]: a for a in retrain["aggregate"]}
    rows = []
    for c in retrain["configs"]:
        a = agg.get(c["label"])
        dev = _dev_cell(a["dev"]) if a else "failed"
        rows.append(
            [c["label"], c["summary"], ", ".join(c["sources"]), pct(c["param_fraction"]), f"{c['search']:.4f}", dev]
            + [len(a["seeds"]) if a else 0]
        )
    header = ["", "configuration", "from", "trained params", "search (study)", "dev (mean ± std)", "seeds"]
    name = prof["label"]
    figures = [(f"{name} dev front", links["front-dev"])] if "front-dev" in links else []
    for key in summary.get("dev_fronts", {}):
        if f"dev-front-{key}" in links:
            figures.append((f"{name} dev front of {key}", links[f"dev-front-{key}"]))
    return {
        "studies": ", ".join(prof["front_studies"]),
        "table": table(header, rows),
        "failed": sum(r["state"] != "completed" for r in retrain["rows"]),
        "figures": figures,
    }


def _dominance_table(summary: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    dom = summary.get("dominance")
    if not dom:
        return None
    rows = [
        [d["label"], pct(d["param_fraction"]), f"{d['dev_mean']:.4f}", ", ".join(d["beaten_by"]) or "**not beaten**"]
        for d in dom
    ]
    free = [d["label"] for d in dom if not d["beaten_by"]]
    return {
        "table": table(["baseline", "trained params", f"{name} dev mean", "beaten by"], rows),
        "free": ", ".join(free) if free else "none",
    }


def _transfer_table(results, summary, prof) -> dict[str, Any] | None:
    tr = results.get("transfer")
    if not tr:
        return None
    tasks = prof["transfer_tasks"]
    rows = []
    for c in tr["configs"]:
        cells = [c["label"], c["summary"], c["source"], pct(c["param_fraction"])]
        for other in tasks:
            a = next((a for a in tr["aggregate"][other] if a["label"] == c["label"]), None)
            cells.append(_dev_cell(a["dev"]) if a else "failed")
        rows.append(cells)
    names = {t: " / ".join(next(iter(tr["aggregate"][t]), {}).get("dev", {}) or ["dev"]) for t in tasks}
    header = ["target", "configuration", "from", "trained params"] + [f"{TASK_LABELS[t]} dev {names[t]}" for t in tasks]
    plan = results["meta"]["plan"]
    return {
        "tasks": " and ".join(TASK_LABELS[t] for t in tasks),
        "table": table(header, rows),
        "texts": [transfer_text(t, plan, summary.get("transfer", {}).get(t)) for t in tasks],
    }


def _throughput_tables(results, summary, links) -> dict[str, Any] | None:
    tp = results.get("throughput")
    if not tp:
        return None
    full_eps = summary["throughput"]["full"]
    rows = [
        [
            r["label"],
            pct(r["param_fraction"]),
            f"{r['examples_per_second']:.1f}",
            f"{r['examples_per_second'] / full_eps:.2f}x" if full_eps else "-",
        ]
        for r in tp["alone"]
    ]
    shared = None
    if tp.get("shared"):
        srows = []
        for key, s in tp["shared"].items():
            gpu = s["gpu"] or {}
            util = (
                f"{gpu['utilization_mean']:.0f}% mean, {gpu['utilization_median']:.0f}% median"
                if gpu.get("samples")
                else gpu.get("note", "-")
            )
            per_trial = f"{s['per_trial_median']:.1f}" if s["per_trial_median"] else "-"
            srows.append(
                [key, s["workers"], s["trials"], per_trial, f"{s['aggregate']:.1f}" if s["aggregate"] else "-", util]
            )
        header = ["study", "workers", "trials", "examples/s per trial (median)", "examples/s all workers"]
        shared = table([*header, "GPU utilisation"], srows)
    return {
        "steps": tp["steps"],
        "table": table(["method", "trained params", "examples/s", "vs full"], rows),
        "shared": shared,
        "link": links.get("throughput"),
    }


def body_text(results: Mapping[str, Any], summary: Mapping[str, Any], links: Mapping[str, str]) -> str:
    """The report's sections: setup, every table, plots, the non-dominated baselines, target checks."""
    meta = results["meta"]
    plan = meta["plan"]
    prof = profile_of(plan)
    task, name = prof["task"], prof["label"]
    cap = plan["training"].get("max_search_examples")
    phases = meta.get("phases", {})
    met = {True: "yes", False: "**no**", None: "not measured"}
    targets = [[c["target"], met[c["met"]], c["detail"]] for c in summary["targets"]]
    return render(
        "results_body.md.j2",
        meta=meta,
        plan=plan,
        name=name,
        v=meta["versions"],
        model=plan["model"] or "the bundled all-MiniLM-L6-v2 (6 layers, 22.7 M backbone parameters)",
        training=json.dumps(plan["training"]),
        search_cap=f", at most {cap} examples" if cap else "",
        phase_times=", ".join(f"{p} {info['seconds'] / 60:.1f} min" for p, info in phases.items()) or "-",
        commands="\n".join(f"{c['command']}   # {c['date']}" for c in meta["commands"]),
        baselines=_baselines_table(summary, task, name),
        studies=_studies_tables(results, links),
        hv=_hypervolume_table(summary, task, links),
        retrain=_retrain_table(results, summary, prof, links),
        dominance=_dominance_table(summary, name),
        transfer=_transfer_table(results, summary, prof),
        throughput=_throughput_tables(results, summary, links),
        batch=plan["training"]["batch_size"],
        targets=table(["target", "met", "numbers"], targets),
    )


def transfer_text(task: str, plan: Mapping[str, Any], check: Mapping[str, Any] | None) -> str:
    """The transfer's budget on ``task`` and what it shows, evaluated from the numbers."""
    label = TASK_LABELS[task]
    configs = []
    for c in (check or {}).get("configs", []):
        beaten = [d["label"] for d in check["dominance"] if c["label"] in d["beaten_by"]]
        above = check["majority"] is not None and c["dev_mean"] > check["majority"]
        configs.append({**c, "beaten": beaten, "above": above})
    return render(
        "results_transfer.md.j2",
        label=label,
        budget=plan.get("task_budgets", {}).get(task),
        batch=plan["training"]["batch_size"],
        check=check,
        configs=configs,
    )


def transfer_bullet(
    task: str, plan: Mapping[str, Any], check: Mapping[str, Any], baselines: Mapping[str, Any] | None
) -> str:
    """One line of the CPU section: the transfer's budget, cost and result, evaluated from the numbers."""
    walls: dict[bool, list[float]] = {}
    for t in (baselines or {}).get("trials", []):
        if t["task"] == task:
            walls.setdefault(t["method"] == "full", []).append(t["wall_seconds"])
    beaten = sorted({d["label"] for d in check["dominance"] if d["beaten_by"]})
    ahead = [d["label"] for d in check["dominance"] if not d["beaten_by"] and d["label"] != METHODS["full"][0]]
    return render(
        "results_transfer_bullet.md.j2",
        label=TASK_LABELS[task],
        budget=plan.get("task_budgets", {}).get(task, {}),
        walls=walls if walls.get(True) and walls.get(False) else None,
        check=check,
        beaten=beaten,
        ahead=ahead,
    )


def cpu_section(results: Mapping[str, Any], summary: Mapping[str, Any], body: str) -> str:
    """The "Results on CPU" section of docs/results.md: what ran, where, how, then the report."""
    medians = [study_digest(r)["trial_seconds_median"] for r in results["studies"].values()]
    medians = [m for m in medians if m is not None]
    transfers = [
        transfer_bullet(task, results["meta"]["plan"], check, results.get("baselines"))
        for task, check in (summary.get("transfer") or {}).items()
    ]
    return render(
        "results_cpu.md.j2",
        meta=results["meta"],
        plan=results["meta"]["plan"],
        t=results["meta"]["plan"]["training"],
        studies=results["studies"],
        medians=(min(medians), max(medians)) if medians else None,
        missing=[phase for phase in ("baselines", "retrain") if not results.get(phase)],
        transfer_run=bool(results.get("transfer")),
        transfers=transfers,
        body=demote(body),
    )


def placeholder_text(
    results: Mapping[str, Any] | None,
    summary: Mapping[str, Any] | None,
    body: str | None,
    plots: Sequence[str] = (),
    plot_dir: str = "",
) -> str:
    """The page while no GPU run exists: says so, gives the one command, lists the outputs; a dry run,
    if given, only inside a section labelled as a CPU dry run with meaningless numbers."""
    run = None
    if results is not None and summary is not None:
        meta = results["meta"]
        t = meta["plan"]["training"]
        run = {
            "meta": meta,
            "first": meta["commands"][0],
            "length": f"{t['max_steps']} steps" if t.get("max_steps") else f"{t.get('epochs')} epochs",
            "phase_times": ", ".join(f"{p} {info['seconds']:.0f} s" for p, info in meta.get("phases", {}).items()),
            "counts": "; ".join(
                f"{key}: {r['study']['counts']['completed']} completed, {r['study']['counts']['failed']} failed"
                for key, r in results["studies"].items()
            ),
            "plots": ", ".join(sorted(plots)),
            "plot_dir": plot_dir,
            "measured": sum(c["met"] is not None for c in summary["targets"]),
            "body": body,
        }
    return render("results_placeholder.md.j2", one_command=ONE_COMMAND, dry_command=DRY_COMMAND, run=run)


def write_results_page(doc: Path, *, cpu: str | None = None, gpu: str | None = None) -> None:
    """docs/results.md: the CPU section first (when there is one), then the GPU page; a part not
    given is kept from the file as it is."""
    old = doc.read_text() if doc.exists() else ""
    has_cpu = CPU_BEGIN in old and CPU_END in old
    if cpu is None and has_cpu:
        cpu = old[old.index(CPU_BEGIN) + len(CPU_BEGIN) : old.index(CPU_END)].strip("\n")
    if gpu is not None:
        gpu_part = demote(gpu) if cpu else gpu
    elif has_cpu:
        gpu_part = old[old.index(CPU_END) + len(CPU_END) :].strip("\n") + "\n"
    else:
        gpu_part = demote(old) if cpu and old else old
    text = f"# Results\n\n{CPU_BEGIN}\n{cpu}\n{CPU_END}\n\n{gpu_part}" if cpu else gpu_part
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)


def summary_json(results: Mapping[str, Any], summary: Mapping[str, Any]) -> dict[str, Any]:
    """benchmarks/results/cpu/summary.json (issue 14's fields): device, task, budget, baselines,
    searches with their hypervolume over trials and their front on dev, transfer, targets."""
    meta = results["meta"]
    plan = meta["plan"]
    prof = profile_of(plan)

    def dev(values: Sequence[float], seeds: Sequence[int]) -> dict[str, Any]:
        m, s = mean_std(values)
        return {"mean": m, "std": s, "seeds": list(seeds)}

    baselines = [
        {
            "label": b["label"],
            "method": b["method"],
            "param_fraction": b["param_fraction"],
            "dev": dev(b["dev"][b["metric_name"]], b["seeds"]),
        }
        for b in summary["baselines"].get(prof["task"], [])
    ]
    by_source: dict[str, Mapping[str, Any]] = {}
    for c in summary.get("retrained", []):
        for src in c["sources"]:
            by_source[src] = c
    searches = []
    for key, record in results["studies"].items():
        space, method = prof["searches"][key]
        front = []
        for t in record["pareto"]["data"]:
            c = by_source.get(f"{key}#{t['number']}")
            front.append(
                {
                    "trial": t["number"],
                    "config": t["config"],
                    "summary": config_summary(t["config"]),
                    "param_fraction": t["param_fraction"],
                    "search": t["metric"],
                    "dev": {"mean": c["dev_mean"], "std": c["dev_std"], "seeds": c["seeds"]} if c else None,
                }
            )
        c = record["study"]["counts"]
        searches.append(
            {
                "name": key,
                "space": space,
                "method": method,
                "trials": c["completed"] + c["failed"],
                "completed": c["completed"],
                "failed": c["failed"],
                "hypervolume": summary["curves"].get(key, []),
                "dev_hypervolume": summary.get("dev_fronts", {}).get(key, {}).get("hypervolume"),
                "front": front,
            }
        )
    tr = results.get("transfer")
    return {
        "device": meta["device_name"],
        "machine": meta["machine"],
        "versions": meta["versions"],
        "task": prof["task"],
        "budget": {
            **{k: v for k, v in plan["training"].items() if k != "seed"},
            "seeds": plan["seeds"],
            "workers": plan["workers"],
            "trials_per_search": plan["trials"],
            "lr_preset": plan["lr_preset"],
        },
        "commands": meta["commands"],
        "phases": meta.get("phases", {}),
        "baselines": baselines,
        "searches": searches,
        "dominance": summary.get("dominance"),
        "transfer": (
            {
                "budgets": plan.get("task_budgets"),
                "configs": tr["configs"],
                "aggregate": tr["aggregate"],
                "evaluation": summary.get("transfer"),
            }
            if tr
            else None
        ),
        "targets": summary["targets"],
    }


def write_report(results: Mapping[str, Any], summary: Mapping[str, Any], doc: Path, publish: Path) -> dict[str, Path]:
    """The report's plots in ``publish`` and its page in ``doc`` (a real CPU run: also ``summary.json``
    in ``publish``); a dry run or a run off the GPU writes the page that says so. Returns the plots."""
    meta = results["meta"]
    real = is_real(meta)
    cpu = meta["plan"].get("profile", "gpu") == "cpu"
    label = None if real else ("CPU DRY RUN: MEANINGLESS NUMBERS" if meta.get("dry_run") else "NOT A GPU RUN")
    made = make_plots(results, summary, publish, label)
    # a page that is not a real run links no figures (they live outside the repository, and mean nothing)
    links = {k: os.path.relpath(p, doc.parent) for k, p in made.items()} if real else {}
    body = body_text(results, summary, links)
    if real and cpu:
        save_json(publish / "summary.json", summary_json(results, summary))
        write_results_page(doc, cpu=cpu_section(results, summary, body))
    elif real:
        write_results_page(doc, gpu=render("results_gpu.md.j2", meta=meta, one_command=ONE_COMMAND, body=body))
    elif cpu:
        say("report: a dry run of the CPU profile: its page is labelled as meaningless")
        doc.parent.mkdir(parents=True, exist_ok=True)
        doc.write_text(f"# CPU DRY RUN: MEANINGLESS NUMBERS\n\n{cpu_section(results, summary, body)}")
    else:
        kind = "a dry run" if meta.get("dry_run") else "not a GPU run"
        say(f"report: {kind}: writing the not-run-yet page, the run labelled as such")
        names = [p.name for p in made.values()]
        text = placeholder_text(results, summary, body.replace("\n## ", "\n### "), names, str(publish))
        write_results_page(doc, gpu=text)
    return made


def phase_report(plan: Mapping[str, Any], out: Path, doc: Path | None, publish: Path | None) -> Path:
    """The report of the run in ``out``: plots, page, a real run's files copied to ``publish`` (the
    repository's benchmarks/results/cpu or gpu), and ``out/results.json``."""
    results = load_results(out)
    meta = results["meta"]
    real = is_real(meta)
    cpu = meta["plan"].get("profile", "gpu") == "cpu"
    summary = summarise(results)
    if doc is None:
        doc = REAL_DOC if real else out / "results.md"
    if publish is None:
        publish = (CPU_PUBLISH if cpu else REAL_PUBLISH) if real else out / "plots"
    if real:
        publish.mkdir(parents=True, exist_ok=True)
        for name in ("meta", "baselines", "studies", "retrain", "transfer", "throughput"):
            src = out / f"{name}.json"
            if src.exists():
                shutil.copy(src, publish / src.name)
        for key in results["studies"]:
            shutil.copy(out / "studies" / f"{key}.json", publish / f"study-{key}.json")
    made = write_report(results, summary, doc, publish)
    save_json(
        out / "results.json",
        {
            "real": real,
            "summary": {k: v for k, v in summary.items() if k != "curves"},
            "curves": summary["curves"],
            "plots": {k: str(p) for k, p in made.items()},
        },
    )
    say_targets(summary["targets"], "" if real else "[dry run / not a real run: meaningless] ")
    say(f"report: wrote {doc} and {len(made)} plot(s) in {publish}")
    return doc


def republish(into: Path) -> list[Path]:
    """The CPU section of docs/results.md, ``summary.json`` and the plots again, from the records the
    CPU run published (no training, no data: the majority floors are the ones its report measured),
    written under ``into`` laid out as the repository (its docs/results.md is updated in place, a
    copy of this checkout's when there is none). Returns the page and the JSON."""
    results = load_results(CPU_PUBLISH, published=True)
    recorded = load_json(CPU_PUBLISH / "summary.json")
    evaluation = (recorded.get("transfer") or {}).get("evaluation") or {}
    floors = {task: check["majority"] for task, check in evaluation.items()}
    summary = summarise(results, floors)
    doc, publish = into / REAL_DOC.relative_to(ROOT), into / CPU_PUBLISH.relative_to(ROOT)
    if not doc.exists():
        doc.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REAL_DOC, doc)
    write_report(results, summary, doc, publish)
    return [doc, publish / "summary.json"]
