"""The pure parts of benchmarks.decoder_llm (issue 29): the studies it creates, and the report it writes from
records (baselines over seeds, the gp front, dominance, partial runs). Synthetic records; no training, no server."""

from __future__ import annotations

import pytest

from benchmarks import decoder_llm as dl

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _trial(number: int, config: dict, fraction: float, search: float, dev: float | None, label: str | None = None):
    return {
        "id": number + 1,
        "number": number,
        "state": "completed",
        "config": config,
        "summary": f"config {number}",
        "label": label,
        "metric": search,
        "param_fraction": fraction,
        "peft_params": int(fraction * 134_515_008),
        "duration_s": 600.0 + number,
        "extra": {"metric_name": "accuracy", "metrics": {"dev": {"accuracy": dev}} if dev is not None else {}},
    }


def _records(partial: bool = False) -> dict:
    records = {}
    for seed in dl.SEEDS:
        trials = [
            _trial(i, b["config"], 0.001 * (i + 1), 0.8, 0.80 + 0.01 * seed + 0.02 * i, b["label"])
            for i, b in enumerate(dl.BASELINES)
        ]
        records[f"smollm2-sst2-baselines-seed{seed}"] = {"body": {"seed": seed}, "trials": trials, "machine": None}
    search = [
        _trial(0, {"ia3": {}}, 0.0005, 0.84, 0.835),  # beats LoRA (0.1%, mean 0.81) and DoRA (0.2%, 0.83)
        _trial(1, {"lora": {"rank": 16}}, 0.01, 0.90, 0.88),
        _trial(2, {"lora": {"rank": 2}}, 0.02, 0.85, 0.99),  # dominated on the search split: not on the front
        {**_trial(3, {"prefix": {"length": 4}}, 0.0001, 0.5, None), "state": "failed"},
    ]
    records["smollm2-sst2-gp"] = {"body": {"seed": 0}, "trials": search, "machine": None, "partial": partial}
    return records


def test_the_studies_are_the_issue_s_baselines_and_a_gp_study_of_at_least_20_trials():
    args = dl.parse_args([])
    baselines = dl.study_bodies("baselines", args, "/data")
    assert [b["seed"] for b in baselines.values()] == [0, 1, 2]
    for body in baselines.values():
        assert body["max_trials"] == len(body["baselines"]) == 4 and body["model"] == "smollm2-135m"
        assert body["training"]["evaluate_dev"] and body["training"]["seed"] == body["seed"]
    labels = [b["label"] for b in dl.BASELINES]
    assert labels == ["LoRA r=8 q,v", "DoRA r=8 q,v", "(IA)3", "prefix 16"]
    (search,) = dl.study_bodies("search", args, "/data").values()
    assert search["optimizer"]["method"] == "gp" and search["max_trials"] >= 20
    assert {k: v for k, v in search["training"].items() if k != "seed"} == {
        k: v for k, v in next(iter(baselines.values()))["training"].items() if k != "seed"
    }  # the same per-trial budget


def test_the_summary_reads_baselines_over_seeds_the_front_and_what_it_dominates():
    summary = dl.summarise(_records())
    lora = summary["baselines"][0]
    assert lora["label"] == "LoRA r=8 q,v" and lora["seeds"] == [0, 1, 2]
    assert lora["dev_mean"] == pytest.approx(0.81) and lora["dev_std"] == pytest.approx(0.01)
    assert [f["config"] for f in summary["front"]] == [{"ia3": {}}, {"lora": {"rank": 16}}]
    beaten = {d["label"]: d["beaten_by"] for d in summary["dominance"]}
    assert beaten["LoRA r=8 q,v"] == beaten["DoRA r=8 q,v"] == ["trial 0"]
    assert beaten["prefix 16"] == []  # 0.87 at 0.4%: the 0.01 point has more parameters
    assert summary["median_trial_seconds"] == pytest.approx(601.0)  # 3 x 4 baselines and 3 completed searches
    assert dl.budget_margin(summary) == pytest.approx(0.81 - dl.MAJORITY_DEV)


def test_the_report_replaces_its_section_and_says_when_it_is_partial(tmp_path):
    summary = dl.summarise(_records(partial=True))
    text = dl.render(summary)
    assert text.startswith(dl.BEGIN) and text.endswith(dl.END) and "**Partial**" in text
    assert "12 of 12 baseline trials and 3 of the gp study's 20 trials had completed" in text
    assert "| LoRA r=8 q,v | 0.100% | 81.0 ± 1.0 (mean ± sd of seeds 0, 1, 2) |" in text
    assert "- LoRA r=8 q,v (0.100%, 81.0%): dominated by trial 0" in text
    doc = "# Results\n\nintro\n"
    once = dl.replace_section(doc, text)
    assert once.count("## Decoder LLM on CPU") == 1 and once.startswith(doc.rstrip("\n"))
    again = dl.replace_section(once, dl.render(dl.summarise(_records())))
    assert again.count(dl.BEGIN) == 1 and "**Partial**" not in again
    dl.plot(summary, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes().startswith(PNG_MAGIC)


def test_the_report_says_when_a_baseline_does_not_clear_the_majority_class():
    records = _records()
    for seed in dl.SEEDS:  # prefix 16 at the majority class in every seed
        trials = records[f"smollm2-sst2-baselines-seed{seed}"]["trials"]
        trials[3]["extra"]["metrics"]["dev"]["accuracy"] = dl.MAJORITY_DEV
    text = dl.render(dl.summarise(records))
    assert "**Not met** for prefix 16 (less than 5 points above it)" in text
    assert "**Not met**" not in dl.render(dl.summarise(_records()))
