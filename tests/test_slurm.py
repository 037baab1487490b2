"""``autopeft launch slurm`` without a cluster: the batch script it writes, and what it refuses.

The script's worker command and the template's (deploy/slurm/autopeft-worker.sbatch, run by bash
with a stand-in python3 that records its arguments) must parse with ``autopeft worker``'s own
parser. tests/deploy/test_slurm_cluster.py runs both on a real one-node cluster.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from autopeft.cli import build_parser, main
from autopeft.slurm import WORKER_ID, SlurmWorkers

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "deploy" / "slurm" / "autopeft-worker.sbatch"


def worker_namespace(args: list[str]):
    parsed = build_parser().parse_args(args)
    assert parsed.command == "worker"
    return parsed


def directives(script: str) -> list[str]:
    return [line.removeprefix("#SBATCH ") for line in script.splitlines() if line.startswith("#SBATCH ")]


def test_slurm_script_asks_for_one_gpu_per_array_task_and_runs_this_python(tmp_path):
    job = SlurmWorkers(
        server="http://10.0.0.5:8000",
        workers=8,
        partition="gpu",
        time="12:00:00",
        data=("/shared/glue",),
        models=("/shared/models", "/scratch/more models"),
        study=3,
        sbatch_args=("--mem", "16G", "--cpus-per-task=4", "--comment", "autopeft sweep"),
    )
    script = job.batch_script()
    assert script.startswith("#!/bin/bash\n")
    assert directives(script) == [
        "--job-name=autopeft-worker",
        "--array=0-7",
        "--ntasks=1",
        "--gres=gpu:1",
        "--partition=gpu",
        "--time=12:00:00",
        "--output=autopeft-worker-%A_%a.log",
        "--export=ALL",
        "--mem 16G",
        "--cpus-per-task=4",
        '--comment "autopeft sweep"',  # sbatch reads double quotes in a directive
    ]
    assert f"exec {sys.executable} -m autopeft worker" in script
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)  # valid bash

    ns = worker_namespace(job.worker_args())
    assert (ns.server, ns.device, ns.study, ns.exit_when_idle, ns.no_progress) == (
        "http://10.0.0.5:8000",
        "cuda",
        3,
        300.0,
        True,
    )
    assert ns.data == ["/shared/glue"] and ns.models == ["/shared/models", "/scratch/more models"]
    assert ns.worker_id == WORKER_ID and f'--worker-id "{WORKER_ID}"' in script  # expanded in the job


def test_slurm_script_words_reach_the_worker_as_written(tmp_path):
    """What bash makes of the script's command is exactly worker_args (quoting included)."""
    job = SlurmWorkers(server="http://h:1", workers=2, gpus_per_worker=0, models=("/a b/c'd",), python="/venv/bin/py")
    command = job.batch_script().split("exec ", 1)[1].replace("\\\n", " ")
    env = {"SLURM_ARRAY_JOB_ID": "41", "SLURM_ARRAY_TASK_ID": "1", "PATH": os.environ["PATH"]}
    words = subprocess.run(
        ["bash", "-c", f"printf '%s\\n' {command}"], env=env, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert words[:3] == ["/venv/bin/py", "-m", "autopeft"]
    assert words[3:] == [w.replace(WORKER_ID, "slurm-41_1") for w in job.worker_args()]
    assert worker_namespace(words[3:]).device == "cpu" and "--gres" not in job.batch_script()


def test_slurm_workers_sharing_gpus_run_on_cuda_with_the_shards_sbatch_gives_them():
    job = SlurmWorkers(
        server="http://h:1", workers=8, gpus_per_worker=0, device="cuda", sbatch_args=("--gres=shard:1",)
    )
    script = job.batch_script()
    assert "--gres=shard:1" in directives(script) and "--gres=gpu:1" not in directives(script)
    assert worker_namespace(job.worker_args()).device == "cuda" and "on its GPU" in script


def test_slurm_script_never_holds_the_api_key(monkeypatch, capsys):
    monkeypatch.setenv("AUTOPEFT_API_KEY", "the-secret-key")
    assert main(["launch", "slurm", "--server", "http://h:8000", "--workers", "2", "--dry-run"]) == 0
    script = capsys.readouterr().out
    assert script.startswith("#!/bin/bash") and "the-secret-key" not in script and "--api-key" not in script
    assert "--export=ALL" in directives(script)  # the key reaches the job through the environment


def test_launch_slurm_dry_run_passes_extra_sbatch_args_after_the_double_dash(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["launch", "slurm", "--server", "http://h:8000", "--workers", "3", "--gpus-per-worker", "0"]
    argv += ["--data", "glue", "--exit-when-idle", "60", "--dry-run", "--", "--qos", "short", "-c", "2"]
    assert main(argv) == 0
    script = capsys.readouterr().out
    assert directives(script)[-2:] == ["--qos short", "-c 2"] and "--array=0-2" in directives(script)
    ns = worker_namespace(shlex.split(script.split("-m autopeft ", 1)[1].replace("\\\n", " ")))
    assert ns.data == [str(tmp_path / "glue")] and ns.exit_when_idle == 60.0  # absolute: the job starts elsewhere


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--server", "10.0.0.5:8000", "--workers", "2"], "--server must be a URL"),
        (["--server", "http://h:8000", "--workers", "0"], "--workers must be at least 1, got 0"),
        (["--server", "http://h:8000", "--workers", "2", "--gpus-per-worker", "2"], "--gpus-per-worker must be 0"),
        (["--server", "http://h:8000", "--workers", "2", "--time", "90"], "--time must be HH:MM:SS"),
        (["--server", "http://h:8000", "--workers", "2", "--partition", "a b"], "--partition must be"),
        (["--server", "http://h:8000", "--workers", "2", "--study", "0"], "--study must be a study id"),
        (["--server", "http://h:8000", "--workers", "2", "--exit-when-idle", "0"], "--exit-when-idle must be"),
        (["--server", "http://h:8000", "--workers", "2", "--device", "gpu"], "--device must be cuda, cuda:N or cpu"),
        (["--server", "http://h:8000", "--workers", "2", "--", "mem=4G"], "are sbatch options and start with '-'"),
    ],
)
def test_launch_slurm_refuses_bad_options_with_one_line(argv, message, capsys):
    assert main(["launch", "slurm", *argv, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("autopeft launch: error: ") and message in err and err.count("\n") == 1, err


def test_launch_slurm_without_sbatch_says_where_to_run_it(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["launch", "slurm", "--server", "http://h:8000", "--workers", "2"]) == 2
    assert "sbatch not found on PATH: run this on a Slurm login node" in capsys.readouterr().err


def test_launch_slurm_reports_what_sbatch_refused(capsys, monkeypatch, tmp_path):
    """A stand-in sbatch that refuses as Slurm does; and one that accepts: the job id alone on stdout."""
    fake = tmp_path / "sbatch"
    fake.write_text("#!/bin/sh\necho 'sbatch: error: invalid partition specified: gpu' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    assert main(["launch", "slurm", "--server", "http://h:8000", "--workers", "2", "--partition", "gpu"]) == 2
    assert "sbatch refused the job: sbatch: error: invalid partition specified: gpu" in capsys.readouterr().err

    fake.write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path}/argv\ncat > {tmp_path}/script\necho '4242;cluster'\n")
    assert main(["launch", "slurm", "--server", "http://h:8000", "--workers", "2"]) == 0
    out, err = capsys.readouterr()
    assert out == "4242\n" and "job array 4242" in err and "scancel 4242" in err
    assert (tmp_path / "argv").read_text().split() == ["--parsable", "--export=ALL"]
    assert (tmp_path / "script").read_text() == SlurmWorkers(server="http://h:8000", workers=2).batch_script()


def test_slurm_template_builds_a_worker_command_the_worker_parser_accepts(tmp_path):
    """deploy/slurm/autopeft-worker.sbatch run by bash outside Slurm, with a python3 that records its arguments."""
    recorder = tmp_path / "python3"
    recorder.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {tmp_path}/argv\n")
    recorder.chmod(0o755)
    env = {
        "PATH": f"{tmp_path}:/usr/bin:/bin",
        "SLURM_ARRAY_JOB_ID": "7",
        "SLURM_ARRAY_TASK_ID": "3",
        "AUTOPEFT_SERVER": "http://server.example:8000",
        "AUTOPEFT_STUDY": "5",
        "AUTOPEFT_MODELS": "/shared/models",
    }
    subprocess.run(["bash", str(TEMPLATE)], env=env, check=True, timeout=30)
    words = (tmp_path / "argv").read_text().splitlines()
    assert words[:2] == ["-m", "autopeft"]
    ns = worker_namespace(words[2:])
    assert (ns.server, ns.device, ns.study, ns.models, ns.worker_id, ns.exit_when_idle) == (
        "http://server.example:8000",
        "cuda",
        5,
        ["/shared/models"],
        "slurm-7_3",
        300.0,
    )

    without_server = {k: v for k, v in env.items() if k != "AUTOPEFT_SERVER"}
    done = subprocess.run(
        ["bash", str(TEMPLATE)], env=without_server, capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode != 0 and "set AUTOPEFT_SERVER to the server URL" in done.stderr
