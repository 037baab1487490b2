"""``autopeft serve-model OUT``: serve one exported (ONNX) or saved model over ``POST /predict``; no database."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve-model",
        help="serve a model exported with `autopeft export --to onnx` (or a saved trial) over POST /predict",
        description="POST /predict with {\"texts\": [...]} or {\"pairs\": [[a, b], ...]} answers {\"labels\": [...], "
        "\"scores\": [...]}; rows of concurrent requests are predicted together in batches. GET /health describes "
        "the model. No study database is used.",
    )
    p.add_argument("model", metavar="OUT", help="a folder written by `autopeft export --to onnx` or `train --save`")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=8080, help="port (default: 8080)")
    p.add_argument("--batch-size", type=int, default=32, help="most rows predicted at once (default: 32)")
    p.add_argument(
        "--max-wait-ms", type=float, default=5.0, help="how long a batch waits for more rows (default: 5 ms)"
    )
    p.add_argument("--threads", type=int, default=None, help="inference threads (default: the runtime's choice)")
    p.set_defaults(run=run, extras=("server",))


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from autopeft.api.model_serving import create_model_app, load_predictor
    from autopeft.errors import AutoPeftError

    if not 0 < args.port < 65536 or args.batch_size < 1 or args.max_wait_ms < 0:
        raise AutoPeftError(
            f"--port must be in 1..65535, --batch-size >= 1 and --max-wait-ms >= 0 (got {args.port}, "
            f"{args.batch_size}, {args.max_wait_ms})"
        )
    predictor = load_predictor(args.model, threads=args.threads)
    app = create_model_app(predictor, args.batch_size, args.max_wait_ms)
    print(f"serving {predictor.kind} model {predictor.folder} on http://{args.host}:{args.port} (POST /predict)",
          flush=True)  # fmt: skip
    uvicorn.run(app, host=args.host, port=args.port, log_config=None, access_log=False, timeout_graceful_shutdown=5)
    return 0
