"""A one-node Slurm cluster in a temporary folder, for tests: munged, slurmctld and slurmd.

Debian's ``slurm-wlm`` and ``munge`` (``.ci/run`` installs them). Everything lives under one folder:
the munge key and socket, a generated ``slurm.conf`` (this host's name, 2 CPUs, two stand-in GPUs
so that scripts asking for ``--gres=gpu:1`` or ``--gres=shard:1`` are accepted and get ``CUDA_VISIBLE_DEVICES``; no cgroup
plugins; ports that are free), state, spool and logs. Client commands find it through
:attr:`SlurmCluster.env` (``SLURM_CONF``). :meth:`stop` ends every process the cluster started, job
steps included, and :meth:`leftovers` finds any that did not end: a process is the cluster's when
its command line or environment names the cluster's folder.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "scontrol", "sinfo")


def missing_programs() -> list[str]:
    return [name for name in DAEMONS if shutil.which(name) is None and not Path("/usr/sbin", name).exists()]


def _program(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SlurmCluster:
    """Start with :meth:`start`, end with :meth:`stop`; as root (slurmd starts job steps as their user)."""

    def __init__(self) -> None:
        # Short paths under /tmp: munge and slurmd put Unix sockets there (108 bytes at most).
        self.root = Path(tempfile.mkdtemp(prefix="autopeft-slurm-"))
        self.node = socket.gethostname().split(".")[0]
        self.procs: dict[str, subprocess.Popen] = {}
        self.env = {**os.environ, "SLURM_CONF": str(self.root / "slurm.conf")}

    # -- start ----------------------------------------------------------------------------------
    def start(self, timeout: float = 60) -> SlurmCluster:
        try:
            self._write_config()
            self._start_munge()
            self._daemon("slurmctld", [_program("slurmctld"), "-D", "-i", "-f", self.env["SLURM_CONF"]])
            self._wait(lambda: self.run("scontrol", "ping", check=False).stdout.count("UP") >= 1, timeout, "slurmctld")
            self._daemon("slurmd", [_program("slurmd"), "-D", "-N", self.node, "-f", self.env["SLURM_CONF"]])
            self._wait(lambda: self.run("sinfo", "-h", "-o", "%T").stdout.strip() == "idle", timeout, "an idle node")
        except BaseException:
            self.stop()
            raise
        return self

    def _write_config(self) -> None:
        for sub in ("munge", "socket", "state", "spool", "log"):
            (self.root / sub).mkdir(mode=0o700)
        (self.root / "socket").chmod(0o755)  # munged wants its socket's folder open to all
        r = self.root
        lines = {
            "ClusterName": "autopeft-test",
            "SlurmctldHost": f"{self.node}(127.0.0.1)",
            "SlurmUser": _user(),
            "SlurmdUser": _user(),
            "SlurmctldPort": _free_port(),
            "SlurmdPort": _free_port(),
            "AuthType": "auth/munge",
            "AuthInfo": f"socket={r}/socket/munge",
            "CredType": "cred/munge",
            "StateSaveLocation": f"{r}/state",
            "SlurmdSpoolDir": f"{r}/spool",
            "SlurmctldPidFile": f"{r}/slurmctld.pid",
            "SlurmdPidFile": f"{r}/slurmd.pid",
            "SlurmctldLogFile": f"{r}/log/slurmctld.log",
            "SlurmdLogFile": f"{r}/log/slurmd.log",
            "ProctrackType": "proctrack/linuxproc",
            "TaskPlugin": "task/none",
            "JobAcctGatherType": "jobacct_gather/none",
            "AccountingStorageType": "accounting_storage/none",
            "JobCompType": "jobcomp/none",
            "SwitchType": "switch/none",
            "MpiDefault": "none",
            "MailProg": "/bin/true",
            "SelectType": "select/cons_tres",
            "SelectTypeParameters": "CR_CPU",
            "SchedulerType": "sched/builtin",
            "ReturnToService": 2,
            "GresTypes": "gpu,shard",
            "KillWait": 30,
            "MinJobAge": 600,
            "SlurmctldDebug": "info",
            "SlurmdDebug": "info",
        }
        text = "".join(f"{key}={value}\n" for key, value in lines.items())
        text += f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs=2 Gres=gpu:2,shard:4 State=UNKNOWN\n"
        text += f"PartitionName=debug Nodes={self.node} Default=YES MaxTime=INFINITE State=UP\n"
        (r / "slurm.conf").write_text(text)
        # Two character devices stand in for GPUs: Slurm hands them out (whole, or as two shards each, for
        # workers that share a GPU) and sets CUDA_VISIBLE_DEVICES.
        gres = ["Name=gpu File=/dev/null", "Name=gpu File=/dev/zero"]
        gres += ["Name=shard Count=2 File=/dev/null", "Name=shard Count=2 File=/dev/zero"]
        (r / "gres.conf").write_text("".join(f"{line}\n" for line in gres))

    def _start_munge(self) -> None:
        key = self.root / "munge" / "munge.key"
        subprocess.run([_program("mungekey"), "--create", "--keyfile", str(key)], check=True, capture_output=True)
        m = self.root / "munge"
        cmd = [_program("munged"), "--foreground", "--force", f"--key-file={key}", f"--socket={self.socket}"]
        cmd += [f"--pid-file={m}/munged.pid", f"--seed-file={m}/munged.seed", f"--log-file={m}/munged.log"]
        self._daemon("munged", cmd)
        self._wait(self.socket.exists, 30, "munged's socket")

    @property
    def socket(self) -> Path:
        return self.root / "socket" / "munge"

    def _daemon(self, name: str, cmd: list[str]) -> None:
        log = (self.root / "log" / f"{name}.out").open("w")
        self.procs[name] = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def _wait(self, ready, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited ({proc.returncode}) waiting for {what}: {self.log(name)}")
            if ready():
                return
            time.sleep(0.2)
        raise RuntimeError(f"timed out waiting for {what}: {self.logs()}")

    # -- use ------------------------------------------------------------------------------------
    def run(
        self, *cmd: str, check: bool = True, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [_program(cmd[0]), *cmd[1:]],
            env=env or self.env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()}")
        return done

    def jobs(self) -> list[str]:
        """Every job of the cluster still pending or running (array tasks one by one)."""
        return self.run("squeue", "-h", "-r", "-o", "%i %T").stdout.split("\n")[:-1]

    def wait_until_no_jobs(self, timeout: float) -> None:
        self._wait(lambda: not self.jobs(), timeout, "the jobs to end")

    def job_records(self, job_id: str) -> list[dict[str, str]]:
        """``scontrol show job -d``, one dict per array task (finished ones are kept for MinJobAge)."""
        out = self.run("scontrol", "show", "job", "-d", "-o", job_id).stdout
        return [dict(f.split("=", 1) for f in line.split() if "=" in f) for line in out.splitlines() if line]

    def log(self, name: str) -> str:
        path = self.root / "log" / f"{name}.out"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def logs(self) -> str:
        return "\n".join(f"--- {name}\n{self.log(name)}" for name in self.procs)

    # -- stop -----------------------------------------------------------------------------------
    def stop(self, timeout: float = 60) -> None:
        """Cancel every job, then end slurmd, slurmctld and munged (SIGTERM, then SIGKILL)."""
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            self.run("scancel", "--user", _user(), check=False)
            try:
                self.wait_until_no_jobs(timeout)
            except RuntimeError:
                pass
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        deadline = time.monotonic() + 10
        while (left := self.leftovers()) and time.monotonic() < deadline:  # job steps whose slurmd is gone
            for pid in left:
                _kill(pid)
            time.sleep(0.2)

    def leftovers(self) -> list[int]:
        """Processes of this cluster still alive: daemons, job steps, the jobs' programs."""
        marker = str(self.root).encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                if _is_zombie(entry):
                    continue
                if marker in (entry / "cmdline").read_bytes() or marker in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:  # ended meanwhile, or not ours to read
                continue
        return found

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _user() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def _is_zombie(entry: Path) -> bool:
    return (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
