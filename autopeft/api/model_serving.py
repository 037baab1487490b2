"""``autopeft serve-model``: one trained configuration behind ``POST /predict``, no study database.

The folder is an ONNX export (``autopeft export --to onnx``: onnxruntime and tokenizers, no torch at run time)
or a saved trial (``autopeft train --save``, ``study retrain``: autopeft's own model on torch). Rows of
concurrent requests are batched together: a request's rows join a queue, and one task takes up to
``batch_size`` rows at a time (waiting at most ``max_wait_ms`` for more to arrive) and predicts them in a
thread, so the event loop keeps answering.

    POST /predict  {"texts": ["a film worth seeing"]}            -> {"labels": [label], "scores": [probability]}
                   {"pairs": [["A man eats.", "Someone eats."]]}  (a task on text pairs)
    GET  /health   {"status": "ok", "model": {...}}
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict, Field, model_validator

from autopeft.errors import ModelError

#: Most rows one request may send, and most characters in one text.
MAX_ROWS = 1024
MAX_CHARS = 100_000

Text = Annotated[str, Field(max_length=MAX_CHARS)]


@dataclass
class Predictor:
    """A loaded model: ``predict(rows)`` gives labels (or regression values) and scores for each row."""

    predict: Callable[[list[Any]], tuple[list[Any], list[float]]]
    pairs: bool
    labels: list[str] | None
    kind: str
    folder: str
    lock: Any = field(default=None, repr=False)


def load_predictor(folder: str | Path, threads: int | None = None) -> Predictor:
    """An ONNX export or a saved trial at ``folder`` (a one-line :class:`ModelError` when it is neither)."""
    from autopeft.onnx_model import ONNX_INFO, OnnxModel, decode_logits

    folder = Path(folder).expanduser()
    if (folder / ONNX_INFO).is_file():
        from autopeft.extras import require

        require("export", "serving an ONNX export")
        onnx = OnnxModel.load(folder, threads=threads)
        return Predictor(onnx.predict, bool(onnx.info["pairs"]), onnx.labels, "onnx", str(folder))
    from autopeft.train.saved import load_trained

    if threads:
        import torch

        torch.set_num_threads(threads)
    trained = load_trained(folder)  # a ModelError names what is missing when it is not a saved trial either
    if trained.task is None:
        raise ModelError(f"{str(folder)!r} was saved without a task (handle.save); export it --to onnx first")
    pairs = len(trained.task.text_columns) > 1

    def predict(rows: list[Any]) -> tuple[list[Any], list[float]]:
        columns = {"text_a": [r[0] if isinstance(r, list) else r for r in rows]}
        if pairs:
            columns["text_b"] = [r[1] if isinstance(r, list) else "" for r in rows]
        return decode_logits(trained.logits(columns), trained.labels, trained.is_regression)

    return Predictor(predict, pairs, trained.labels, "autopeft", str(folder))


class PredictRequest(BaseModel):
    """Single texts, or text pairs for a task on pairs (one of the two)."""

    model_config = ConfigDict(extra="forbid")
    texts: Annotated[list[Text], Field(min_length=1, max_length=MAX_ROWS)] | None = None
    pairs: Annotated[list[Annotated[list[Text], Field(min_length=2, max_length=2)]], Field(
        min_length=1, max_length=MAX_ROWS
    )] | None = None  # fmt: skip

    @model_validator(mode="after")
    def _one_of(self) -> PredictRequest:
        if (self.texts is None) == (self.pairs is None):
            raise ValueError("send either 'texts' (a list of strings) or 'pairs' (a list of [text_a, text_b])")
        return self


class PredictResponse(BaseModel):
    labels: list[str | float] = Field(description="The predicted label of each row (a number for a regression).")
    scores: list[float] = Field(description="The softmax probability of each label (a regression: its value).")


class Batcher:
    """Gathers the rows of concurrent requests into batches of at most ``batch_size`` rows."""

    def __init__(self, predictor: Predictor, batch_size: int, max_wait_ms: float) -> None:
        self.predictor, self.batch_size, self.max_wait = predictor, batch_size, max_wait_ms / 1000
        self.queue: asyncio.Queue[tuple[Any, asyncio.Future]] = asyncio.Queue()
        #: Sizes of the batches run so far (``GET /health`` shows the last ones).
        self.batches: list[int] = []

    async def predict(self, rows: Sequence[Any]) -> tuple[list[Any], list[float]]:
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in rows]
        for row, future in zip(rows, futures, strict=True):
            self.queue.put_nowait((row, future))
        answers = await asyncio.gather(*futures)
        return [a[0] for a in answers], [a[1] for a in answers]

    async def run(self) -> None:
        while True:
            batch = [await self.queue.get()]
            deadline = asyncio.get_running_loop().time() + self.max_wait
            while len(batch) < self.batch_size:
                timeout = deadline - asyncio.get_running_loop().time()
                try:
                    batch.append(self.queue.get_nowait() if timeout <= 0 else await asyncio.wait_for(
                        self.queue.get(), timeout))  # fmt: skip
                except (asyncio.QueueEmpty, TimeoutError):
                    break
            await self._run_batch(batch)

    async def _run_batch(self, batch: list[tuple[Any, asyncio.Future]]) -> None:
        rows = [row for row, _ in batch]
        self.batches = [*self.batches[-99:], len(rows)]
        try:
            labels, scores = await asyncio.to_thread(self.predictor.predict, rows)
        except Exception as err:  # every waiting request learns it; the loop goes on
            for _, future in batch:
                if not future.done():
                    future.set_exception(err)
            return
        for (_, future), label, score in zip(batch, labels, scores, strict=True):
            if not future.done():
                future.set_result((label, score))


def create_model_app(predictor: Predictor, batch_size: int = 32, max_wait_ms: float = 5.0) -> FastAPI:
    """The app over one loaded model (``autopeft serve-model``)."""
    batcher: Batcher | None = None

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal batcher
        batcher = Batcher(predictor, batch_size, max_wait_ms)
        task = asyncio.create_task(batcher.run())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app = FastAPI(title="autopeft model", lifespan=lifespan)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "model": {"folder": predictor.folder, "kind": predictor.kind, "pairs": predictor.pairs,
                      "labels": predictor.labels},  # fmt: skip
            "batch_size": batch_size,
            "last_batches": batcher.batches[-10:] if batcher else [],
        }

    @app.post("/predict", response_model=PredictResponse)
    async def predict(body: PredictRequest) -> PredictResponse:
        if body.pairs is not None and not predictor.pairs:
            raise HTTPException(422, "this model takes single texts: send 'texts', not 'pairs'")
        rows = body.texts if body.texts is not None else body.pairs
        assert batcher is not None
        try:
            labels, scores = await batcher.predict(rows)
        except ModelError as err:
            raise HTTPException(422, str(err)) from None
        return PredictResponse(labels=labels, scores=scores)

    return app
