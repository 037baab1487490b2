"""Workers as a Slurm job array: the batch script, and its submission with ``sbatch``.

Standard library only, so that the login node that submits needs neither torch nor the server.
One array task is one ``autopeft worker`` on one GPU (Slurm sets ``CUDA_VISIBLE_DEVICES``), with
``--exit-when-idle`` (or ``--study``) so that the allocation ends with the work. The API key is never
written down: the job inherits the environment of ``sbatch`` (``--export=ALL``), where
``$AUTOPEFT_API_KEY`` lives, and the worker reads it from there. ``scancel`` sends the workers
SIGTERM, and each gives its running trial back to the queue.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from autopeft.errors import LaunchError

#: What an array task calls itself on the server: the job and the task, as squeue shows them.
WORKER_ID = "slurm-${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"
_TIME = re.compile(r"(\d+-)?\d+:[0-5]\d:[0-5]\d")
_DEVICE = re.compile(r"cuda(:\d+)?|cpu")
_DIRECTIVE_VALUE = re.compile(r"[A-Za-z0-9_.,:%=/@+-]+")


@dataclass(frozen=True)
class SlurmWorkers:
    """A job array of ``workers`` workers; paths are as the compute nodes see them."""

    server: str
    workers: int
    gpus_per_worker: int = 1
    partition: str | None = None
    time: str | None = None
    data: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    study: int | None = None
    exit_when_idle: float = 300.0
    #: The worker's ``--device``: by default ``cuda`` (the task's GPU) with a GPU, ``cpu`` without. Set it
    #: to ``cuda`` with ``gpus_per_worker=0`` when the GPU comes otherwise (``--gres=shard:1`` in sbatch_args).
    device: str | None = None
    #: The interpreter that runs ``-m autopeft worker`` (default: the one running this, so the job
    #: uses the same environment; it must exist at the same path on the compute nodes).
    python: str = field(default_factory=lambda: sys.executable)
    job_name: str = "autopeft-worker"
    output: str = "autopeft-worker-%A_%a.log"
    #: More ``sbatch`` options, as on its command line (``["--mem", "16G", "--qos=short"]``).
    sbatch_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        url = urlsplit(self.server)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise LaunchError(f"--server must be a URL such as http://10.0.0.5:8000, got {self.server!r}")
        if self.workers < 1:
            raise LaunchError(f"--workers must be at least 1, got {self.workers}")
        if self.gpus_per_worker not in (0, 1):
            raise LaunchError(
                f"--gpus-per-worker must be 0 (a CPU worker) or 1: a worker trains on one device, got "
                f"{self.gpus_per_worker} (ask for more --workers instead)"
            )
        if self.time is not None and not _TIME.fullmatch(self.time):
            raise LaunchError(f"--time must be HH:MM:SS or D-HH:MM:SS, got {self.time!r}")
        if self.partition is not None and not _DIRECTIVE_VALUE.fullmatch(self.partition):
            raise LaunchError(f"--partition must be a partition name (or a comma list), got {self.partition!r}")
        if self.study is not None and self.study < 1:
            raise LaunchError(f"--study must be a study id (1 or more), got {self.study}")
        if self.device is not None and not _DEVICE.fullmatch(self.device):
            raise LaunchError(f"--device must be cuda, cuda:N or cpu, got {self.device!r}")
        if not self.exit_when_idle > 0:
            raise LaunchError(f"--exit-when-idle must be positive, got {self.exit_when_idle}")
        _check_sbatch_args(self.sbatch_args)

    @property
    def worker_device(self) -> str:
        return self.device or ("cuda" if self.gpus_per_worker else "cpu")

    def worker_args(self) -> list[str]:
        """``autopeft``'s arguments in each array task (the worker id is expanded there, by the shell)."""
        args = ["worker", "--server", self.server, "--device", self.worker_device]
        args += ["--exit-when-idle", f"{self.exit_when_idle:g}", "--no-progress"]
        for folder in self.data:
            args += ["--data", folder]
        for folder in self.models:
            args += ["--models", folder]
        if self.study is not None:
            args += ["--study", str(self.study)]
        return [*args, "--worker-id", WORKER_ID]

    def directives(self) -> list[str]:
        lines = [f"--job-name={self.job_name}", f"--array=0-{self.workers - 1}", "--ntasks=1"]
        if self.gpus_per_worker:
            lines.append(f"--gres=gpu:{self.gpus_per_worker}")
        if self.partition:
            lines.append(f"--partition={self.partition}")
        if self.time:
            lines.append(f"--time={self.time}")
        lines += [f"--output={self.output}", "--export=ALL"]
        return lines + [" ".join(map(_directive_word, group)) for group in _option_groups(self.sbatch_args)]

    def batch_script(self) -> str:
        """The whole batch script: what ``--dry-run`` prints and what ``sbatch`` receives."""
        from autopeft._version import __version__

        lines = [" ".join(_shell_word(a) for a in group) for group in _option_groups(self.worker_args())]
        command = " \\\n    ".join([f"exec {shlex.quote(self.python)} -m autopeft {lines[0]}", *lines[1:]])
        where = "the CPU" if self.worker_device == "cpu" else "its GPU (Slurm sets CUDA_VISIBLE_DEVICES)"
        until = f"study {self.study} ends" if self.study is not None else "no work comes"
        return "\n".join(
            [
                "#!/bin/bash",
                f"# {self.workers} autopeft worker(s) as a Slurm job array, written by `autopeft launch slurm` "
                + f"(autopeft {__version__}).",
                f"# Each array task runs one worker on {where} until {until} (or {self.exit_when_idle:g} s pass",
                "# without work). The API key comes from the environment sbatch was called in (--export=ALL),",
                "# never from this file. `scancel JOBID` sends SIGTERM: each worker gives its running trial back.",
                *(f"#SBATCH {line}" for line in self.directives()),
                "set -euo pipefail",
                'export OMP_NUM_THREADS="${SLURM_CPUS_PER_TASK:-${OMP_NUM_THREADS:-1}}"',
                command,
                "",
            ]
        )


def _shell_word(arg: str) -> str:
    return f'"{arg}"' if arg == WORKER_ID else shlex.quote(arg)


def _directive_word(arg: str) -> str:
    """A word of an ``#SBATCH`` line: sbatch reads double quotes there, and no shell quoting."""
    if not re.search(r'[\s"\']', arg):
        return arg
    if '"' in arg:
        raise LaunchError(f"an sbatch option with spaces cannot also hold a double quote, got {arg!r}")
    return f'"{arg}"'


def _option_groups(args: Sequence[str]) -> list[list[str]]:
    """``["--mem", "16G", "-c", "4", "--exclusive"]`` -> one group per option, its values with it."""
    groups: list[list[str]] = []
    for arg in args:
        if arg.startswith("-") or not groups:
            groups.append([arg])
        else:
            groups[-1].append(arg)
    return groups


def _check_sbatch_args(args: Sequence[str]) -> None:
    if args and not args[0].startswith("-"):
        raise LaunchError(f"the arguments after -- are sbatch options and start with '-', got {args[0]!r}")
    for arg in args:
        if "\n" in arg or "\r" in arg:
            raise LaunchError(f"an sbatch option cannot hold a line break, got {arg!r}")


def submit(script: str, sbatch: str = "sbatch") -> str:
    """Submit ``script`` (on sbatch's standard input, so that no file is left behind); its job id."""
    found = shutil.which(sbatch)
    if found is None:
        raise LaunchError(
            f"{sbatch} not found on PATH: run this on a Slurm login node (or --dry-run to see the script)"
        )
    try:
        done = subprocess.run(
            # --export=ALL here too: on the command line it overrides an $SBATCH_EXPORT the cluster may set
            [found, "--parsable", "--export=ALL"],
            input=script,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise LaunchError("sbatch did not answer within 120 s (is slurmctld reachable?)") from None
    if done.returncode != 0:
        reason = (done.stderr.strip() or done.stdout.strip() or f"exit code {done.returncode}").splitlines()[-1]
        raise LaunchError(f"sbatch refused the job: {reason}")
    job_id = done.stdout.strip().split(";")[0]
    if not job_id.isdigit():
        raise LaunchError(f"sbatch answered without a job id: {done.stdout.strip()!r}")
    return job_id


def absolute(folders: Sequence[str] | None) -> tuple[str, ...]:
    """Folders as absolute paths: the job may start elsewhere than where it was submitted."""
    return tuple(str(Path(f).expanduser().absolute()) for f in folders or ())
