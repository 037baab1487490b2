"""``autopeft launch slurm``: start workers where the GPUs are, through the cluster's scheduler.

Only the standard library and :mod:`autopeft.slurm`: a login node submits without torch, the
server or the worker installed beyond this package.
"""

from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("launch", help="start workers through a cluster scheduler (Slurm)")
    schedulers = p.add_subparsers(dest="scheduler", required=True, metavar="SCHEDULER")
    s = schedulers.add_parser(
        "slurm",
        help="submit a job array of workers with sbatch",
        description="Submit one Slurm job array of N `autopeft worker`s and print its job id. Each array task "
        "runs a worker on its GPU until the study ends (--study) or no work comes (--exit-when-idle). The API "
        "key travels in the environment ($AUTOPEFT_API_KEY, passed on by sbatch), never on a command line or "
        "in the script. `scancel JOBID` makes every worker give its running trial back.",
        epilog="Arguments after -- go to sbatch, e.g. -- --mem=16G --cpus-per-task=4 --qos=short",
    )
    s.add_argument("--server", required=True, metavar="URL", help="the server as the compute nodes reach it")
    s.add_argument("--workers", type=int, required=True, metavar="N", help="workers: one array task each")
    s.add_argument("--gpus-per-worker", type=int, default=1, metavar="G", help="1 (default), or 0 for workers on CPU")
    s.add_argument("--partition", default=None, metavar="P", help="the Slurm partition (default: the cluster's)")
    s.add_argument("--time", default=None, metavar="HH:MM:SS", help="time limit of each array task")
    s.add_argument("--data", action="append", default=None, metavar="DIR", help="task data folder (repeatable)")
    s.add_argument("--models", action="append", default=None, metavar="DIR", help="model folder (repeatable)")
    s.add_argument("--study", type=int, default=None, metavar="ID", help="only this study; end when it ends")
    s.add_argument(
        "--exit-when-idle", type=float, default=300.0, metavar="S", help="end a worker after S s without work (300)"
    )
    s.add_argument(
        "--device",
        default=None,
        help="the workers' device (default: cuda with a GPU, else cpu); cuda with --gpus-per-worker 0 when the "
        "GPU comes from the sbatch options, e.g. -- --gres=shard:1 to share GPUs between workers",
    )
    s.add_argument(
        "--python",
        default=None,
        metavar="PATH",
        help="the Python with autopeft on the compute nodes (default: this one, " + sys.executable + ")",
    )
    s.add_argument("--dry-run", action="store_true", help="print the batch script instead of submitting it")
    s.add_argument("sbatch_args", nargs="*", metavar="-- SBATCH_ARGS", help="more sbatch options, after --")
    s.set_defaults(run=run_slurm)


def run_slurm(args: argparse.Namespace) -> int:
    from autopeft.slurm import SlurmWorkers, absolute, submit

    job = SlurmWorkers(
        server=args.server,
        workers=args.workers,
        gpus_per_worker=args.gpus_per_worker,
        partition=args.partition,
        time=args.time,
        data=absolute(args.data),
        models=absolute(args.models),
        study=args.study,
        exit_when_idle=args.exit_when_idle,
        device=args.device,
        python=args.python or sys.executable,
        sbatch_args=tuple(args.sbatch_args),
    )
    script = job.batch_script()
    if args.dry_run:
        print(script, end="")
        return 0
    job_id = submit(script)
    print(job_id)
    own_output = any(a in ("-o", "--output") or a.startswith("--output=") for a in job.sbatch_args)
    logs = "" if own_output else f" (logs: {job.output.replace('%A', job_id).replace('%a', '<task>')})"
    print(
        f"submitted {job.workers} worker(s) as Slurm job array {job_id}{logs}; "
        f"`scancel {job_id}` makes them give their running trials back",
        file=sys.stderr,
    )
    return 0
