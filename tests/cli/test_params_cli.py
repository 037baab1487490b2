"""`autopeft params` and `autopeft space`: what a person runs to price and explore configurations."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from autopeft.cli import main

LORA = '{"lora": {"rank": 8, "alpha": 16, "targets": ["query", "value"]}}'


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_params_json_on_the_bundled_minilm(capsys):
    code, out, _ = run_cli(capsys, "params", "--config", LORA, "--json")
    data = json.loads(out)
    assert code == 0
    assert data["peft_params"] == 73_728 and data["by_family"] == {"lora": 73_728}
    assert data["head_params"] == 770
    assert data["param_fraction"] == pytest.approx(73_728 / data["backbone_params"])


def test_params_counts_ia3_and_dora_on_the_bundled_minilm(capsys):
    """(IA)3: 384 for keys and values and 1,536 feed-forward activations per layer; DoRA: LoRA + a magnitude per row."""
    code, out, _ = run_cli(capsys, "params", "--config", '{"ia3": {}, "lora": {"rank": 8, "dora": true}}', "--json")
    data = json.loads(out)
    assert code == 0
    assert data["by_family"] == {"lora": 73_728 + 6 * 2 * 384, "ia3": 6 * (384 + 384 + 1536)}


def test_params_table_on_a_saved_random_model(capsys, tiny_model_dir, tmp_path):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"serial_adapter": {"size": 8}, "bitfit": {"layers": [0]}}))
    code, out, _ = run_cli(capsys, "params", "--model", str(tiny_model_dir), "--config", str(config))
    assert code == 0
    lines = {line.split()[0]: line for line in out.splitlines() if line and line[0].isalpha()}
    assert "serial_adapter" in lines and "bitfit" in lines
    assert "1,656" in lines["serial_adapter"]  # 3 layers * (2*32*8 + 8 + 32)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--config", '{"lora": {"rank": 8, "targets": ["query", "qv"]}}'], "'qv' is not one of"),
        (["--config", '{"lora": {"rank": 8, "layers": [6]}}'], "layer 6 does not exist"),
        (["--config", '{"loraa": {}}'], "unknown family 'loraa'"),
        (["--config", '{"prefix": {"length": 4, "size": 2}}'], "unknown field 'size' in prefix"),
        (["--config", '{"serial_adapter": {"size": 100000}}'], "out of range"),
        (["--config", "{}", "--model", "/nonexistent"], "is not a directory"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(capsys, args, message):
    code, out, err = run_cli(capsys, "params", *args)
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1


def test_a_real_process_prints_no_traceback(tmp_path):
    result = subprocess.run(
        [str(Path(sys.executable).parent / "autopeft"), "params", "--model", str(tmp_path), "--config", "{}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        f"autopeft params: error: model path {str(tmp_path)!r} is not a Hugging Face model directory (no config.json)"
    )


def test_space_show_describes_dimensions(capsys, tiny_model_dir):
    code, out, _ = run_cli(capsys, "space", "show", "autopeft", "--model", str(tiny_model_dir), "--json")
    info = json.loads(out)
    assert code == 0 and info["d"] == 3 + 3
    assert info["dims"][0] == {"name": "serial_adapter.size", "values": [0, 1, 2, 4, 8, 16, 32]}
    code, out, _ = run_cli(capsys, "space", "show", "grouped")
    assert code == 0 and "layer groups: g0=[0]  g1=[1, 2]  g2=[3, 4]  g3=[5]" in out


def test_space_sample_prints_one_valid_configuration_per_line(capsys, tiny_model_dir):
    from autopeft.config import parse_config

    args = ["space", "sample", "full", "--model", str(tiny_model_dir), "-n", "7", "--seed", "5"]
    code, out, _ = run_cli(capsys, *args)
    lines = out.strip().splitlines()
    assert code == 0 and len(lines) == 7
    for line in lines:
        parse_config(json.loads(line))
    assert run_cli(capsys, *args)[1] == out  # same seed, same configurations


def test_space_sample_accepts_a_user_space_file(capsys, tmp_path):
    spec = tmp_path / "space.json"
    spec.write_text(json.dumps({"families": {"lora": {"rank": [2, 4]}}}))
    code, out, _ = run_cli(capsys, "space", "sample", str(spec), "-n", "3", "--params")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and all(r["config"]["lora"]["rank"] in (2, 4) for r in rows)
    assert all(r["param_fraction"] > 0 for r in rows)
    code, _, err = run_cli(capsys, "space", "show", '{"families": {"lora": {"rank": [2, 4]}, "bitfitt": {}}}')
    assert code == 2 and "unknown family 'bitfitt'" in err
