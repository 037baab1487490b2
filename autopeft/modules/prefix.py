"""Prefix tuning: trainable key/value positions prepended in each chosen layer's self-attention.

The model's own attention code runs unchanged: a forward pre-hook on the layer's
self-attention passes a one-layer "cache" whose ``update`` prepends the prefix to the
keys and values, and widens the attention mask so every query sees the prefix.

transformers has renamed the self-attention's cache argument across releases
(``past_key_value`` -> ``past_key_values`` -> ``cache``) and ignores one it does not
know. The name is read from the attention module's signature, and a probe forward at
injection checks that every prefixed layer really attended ``length + n`` keys, so an
unsupported release fails at injection with a :class:`ConfigError`, never silently in
training.

A self-attention without a cache argument (DistilBERT, ModernBERT) that hands its
projected queries, keys and values to transformers' ``AttentionInterface`` (it reads
``self.config._attn_implementation`` and calls ``ALL_ATTENTION_FUNCTIONS``) gets the
prefix there instead: the chosen layers' attention modules get their own copy of the
config naming :data:`INTERFACE`, a function registered with the ``AttentionInterface``
that prepends the prefix (after any rotary embedding: prefix keys carry no position, as
HF peft's prefixes on rotary models) and widens the mask, then runs the implementation
the model was loaded with. A self-attention that does neither (DeBERTa's disentangled
attention, whose relative-position scores cover the real tokens only) is refused.
Real tokens keep their positions 0..n-1 (HF peft shifts them by the prefix length
on BERT; see tests for how the two are compared).

On a decoder (Llama and its kin) the prefix goes in the same way, through the attention's
cache argument, whose ``update`` a transformers ``Cache`` serves: the keys carry no rotary
position (as a cached key of peft's prefix), every token attends the whole prefix (the
causal mask is widened by visible columns, and built when the model left it to SDPA's
``is_causal``), and the real tokens are numbered from the prefix length on, as if the prefix
were cached tokens before them: the positions HF peft gives them, so that an exported prefix
computes the same logits. Keys and values are as wide as the model's key/value heads
(grouped-query attention: fewer than the query heads), as peft's.

With ``reparameterize`` the prefixes come from an MLP over a small embedding, as in
HF peft's ``prefix_projection`` (one MLP shared by the chosen layers); :meth:`PrefixBank.fold`
replaces it by the prefixes it produces.
"""

from __future__ import annotations

import copy
import inspect
import sys
from collections.abc import Callable, Mapping
from typing import ClassVar

import torch
from pydantic import Field, field_validator
from torch import nn

from autopeft.encoder import EncoderLayout, ModelShape
from autopeft.errors import ConfigError
from autopeft.modules.base import (
    Family,
    FamilySettings,
    InjectContext,
    Injected,
    SizedSettings,
    SizeSpec,
    check_size,
    register,
)
from autopeft.peft_format import PeftAdapter

_SUPPORTED_ATTENTION = ("eager", "sdpa")


class Prefix(SizedSettings):
    """Trainable key/value prefixes in the self-attention of the chosen layers."""

    size_field: ClassVar[str | None] = "length"
    length: SizeSpec = Field(description="Number of virtual key/value positions.")
    reparameterize: bool = Field(False, description="Train through an MLP that is folded away afterwards.")
    hidden: int = Field(512, ge=1, le=65536, description="Width of the reparameterisation MLP.")

    @field_validator("length")
    @classmethod
    def _length(cls, v: SizeSpec) -> SizeSpec:
        return check_size(v, "length")


#: Names transformers releases have given the self-attention's key/value cache argument, newest first.
_CACHE_ARGUMENTS = ("cache", "past_key_values", "past_key_value")


class PrefixBank(nn.Module):
    """The prefixes of every chosen layer: ``key_value(i)`` gives two ``length_i x hidden`` tensors
    (``hidden``: the width of the keys and values, smaller than the model's under grouped-query attention)."""

    def __init__(self, lengths: dict[int, int], hidden: int, mlp_hidden: int | None) -> None:
        super().__init__()
        self.lengths = dict(lengths)
        self.hidden = hidden
        self.order = {layer: pos for pos, layer in enumerate(self.lengths)}
        if mlp_hidden is None:
            self.kv = nn.ParameterDict({str(i): nn.Parameter(torch.empty(2, n, hidden)) for i, n in lengths.items()})
            self.embedding = self.transform = None
        else:
            self.kv = None
            self.embedding = nn.Embedding(max(lengths.values()), hidden)
            self.transform = nn.Sequential(
                nn.Linear(hidden, mlp_hidden), nn.Tanh(), nn.Linear(mlp_hidden, len(lengths) * 2 * hidden)
            )

    @property
    def reparameterized(self) -> bool:
        return self.kv is None

    def key_value(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.lengths[layer]
        if self.kv is not None:
            kv = self.kv[str(layer)]
            return kv[0], kv[1]
        out = self.transform(self.embedding.weight).view(-1, len(self.lengths), 2, self.hidden)
        pos = self.order[layer]
        return out[:n, pos, 0], out[:n, pos, 1]

    @torch.no_grad()
    def fold(self) -> None:
        """Replace the MLP by the prefixes it currently produces."""
        if self.kv is None:
            values = {i: torch.stack(self.key_value(i)) for i in self.lengths}
            self.kv = nn.ParameterDict({str(i): nn.Parameter(v.clone()) for i, v in values.items()})
            self.embedding = self.transform = None


class _PrefixCache:
    """Stands in for a KV cache for one layer: ``update`` prepends the prefix."""

    def __init__(self, key: torch.Tensor, value: torch.Tensor, heads: int) -> None:
        self.key, self.value, self.heads = key, value, heads
        #: Keys the attention received on the last call (``batch x heads x (n + seq) x head_dim``).
        self.seen_keys: int | None = None

    def _expand(self, prefix: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        n, hidden = prefix.shape
        per_head = prefix.view(n, self.heads, hidden // self.heads).transpose(0, 1)
        return per_head.unsqueeze(0).expand(like.shape[0], -1, -1, -1).to(like.dtype)

    def update(self, key: torch.Tensor, value: torch.Tensor, layer_idx: int | None = None, *args, **kwargs):
        """``key``/``value`` are ``batch x heads x seq x head_dim``; returns them with the prefix in front."""
        key = torch.cat([self._expand(self.key, key), key], dim=2)
        value = torch.cat([self._expand(self.value, value), value], dim=2)
        self.seen_keys = key.shape[2]
        return key, value


def _causal_mask(like: torch.Tensor, n: int, additive: bool) -> torch.Tensor:
    """``1 x 1 x q x (n + q)``: every query sees the ``n`` prefix positions and the tokens up to itself
    (``like``: the attention's input, ``batch x q x hidden``); bool, or additive for eager attention."""
    q = like.shape[1]
    seen = torch.ones(q, n + q, dtype=torch.bool, device=like.device).tril(diagonal=n)
    if not additive:
        return seen[None, None]
    blocked = torch.full(seen.shape, torch.finfo(like.dtype).min, dtype=like.dtype, device=like.device)
    return torch.where(seen, torch.zeros_like(blocked), blocked)[None, None]


def _widen_mask(mask: torch.Tensor | None, n: int) -> torch.Tensor | None:
    """Let every query attend the ``n`` prefix positions (mask is ``batch x 1 x q x k`` or None)."""
    if mask is None:
        return None
    if mask.dim() != 4:
        raise ConfigError(f"prefix tuning expects a 4-d attention mask, got shape {tuple(mask.shape)}")
    b, h, q, _ = mask.shape
    fill = torch.ones if mask.dtype == torch.bool else torch.zeros
    return torch.cat([fill(b, h, q, n, dtype=mask.dtype, device=mask.device), mask], dim=-1)


def cache_argument(attention: nn.Module) -> str:
    """The name under which this transformers release's self-attention takes a key/value cache."""
    params = inspect.signature(attention.forward).parameters
    for name in _CACHE_ARGUMENTS:
        if name in params:
            return name
    raise ConfigError(
        f"prefix tuning is not supported with this transformers release: {type(attention).__name__}.forward "
        f"takes none of {list(_CACHE_ARGUMENTS)} (it takes {list(params)})"
    )


#: Name of autopeft's prefix attention in transformers' ``AttentionInterface``.
INTERFACE = "autopeft_prefix"


def dispatches_attention(attention: nn.Module) -> bool:
    """Whether ``attention`` runs through transformers' ``AttentionInterface`` (chosen by its ``config``)."""
    source = sys.modules.get(type(attention).__module__)
    if getattr(attention, "config", None) is None or getattr(source, "ALL_ATTENTION_FUNCTIONS", None) is None:
        return False
    try:
        return "ALL_ATTENTION_FUNCTIONS" in inspect.getsource(type(attention).forward)
    except (OSError, TypeError):
        return False


def _prefixed_attention(module: nn.Module, query, key, value, attention_mask, **kwargs):
    """The registered attention function: prepend the prefix the layer's hook left, then run the model's own."""
    cache: _PrefixCache | None = getattr(module, "autopeft_prefix_cache", None)
    if cache is not None:
        key, value = cache.update(key, value)
        attention_mask = _widen_mask(attention_mask, cache.key.shape[0])
    return module.autopeft_attention(module, query, key, value, attention_mask, **kwargs)


def _route_through_interface(attention: nn.Module) -> Callable[[], None]:
    """Point one attention module at :data:`INTERFACE`; returns the undo."""
    from transformers import AttentionInterface

    AttentionInterface.register(INTERFACE, _prefixed_attention)
    source = sys.modules[type(attention).__module__]
    original = attention.config
    impl = getattr(original, "_attn_implementation", None) or "eager"
    attention.autopeft_attention = source.ALL_ATTENTION_FUNCTIONS.get_interface(impl, source.eager_attention_forward)
    attention.config = copy.copy(original)
    attention.config._attn_implementation = INTERFACE

    def undo() -> None:
        attention.config = original
        del attention.autopeft_attention

    return undo


class _PrefixHook:
    """Forward pre-hook of one layer's self-attention: passes the prefix as its cache."""

    def __init__(self, bank: PrefixBank, layer: int, heads: int, argument: str | None, causal: bool = False) -> None:
        """``argument``: the attention's cache argument; None: the prefix goes through :data:`INTERFACE`.
        ``heads``: key/value heads; ``causal``: a decoder's attention (a missing mask means causal)."""
        self.bank, self.layer, self.heads, self.argument, self.causal = bank, layer, heads, argument, causal
        self.last: _PrefixCache | None = None

    def __call__(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        if any(kwargs.get(name) is not None for name in _CACHE_ARGUMENTS):
            raise ConfigError("prefix tuning cannot be combined with a key/value cache")
        key, value = self.bank.key_value(self.layer)
        self.last = _PrefixCache(key, value, self.heads)
        if self.argument is None:  # the registered attention function prepends it and widens the mask
            module.autopeft_prefix_cache = self.last
            return args, kwargs
        kwargs[self.argument] = self.last
        n = key.shape[0]
        positional = len(args) > 1 and not self.causal  # encoders may pass the mask positionally
        mask = args[1] if positional else kwargs.get("attention_mask")
        if mask is None and self.causal:
            hidden = args[0] if args else kwargs["hidden_states"]
            additive = getattr(getattr(module, "config", None), "_attn_implementation", "eager") == "eager"
            wide = _causal_mask(hidden, n, additive)
        else:
            wide = _widen_mask(mask, n)
        if positional:
            args = (args[0], wide, *args[2:])
        else:
            kwargs["attention_mask"] = wide
        return args, kwargs


class _ShiftPositions:
    """Forward pre-hook of a decoder's backbone: its real tokens are numbered from the longest prefix on (as
    after cached tokens, as HF peft numbers them), and it builds no key/value cache of its own."""

    def __init__(self, length: int) -> None:
        self.length = length

    def __call__(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        if kwargs.get("past_key_values") is not None:
            raise ConfigError("prefix tuning cannot be combined with a key/value cache")
        kwargs["use_cache"] = False
        if kwargs.get("position_ids") is None:
            tokens = kwargs.get("input_ids") if kwargs.get("input_ids") is not None else args[0] if args else None
            if tokens is None:
                tokens = kwargs["inputs_embeds"]
            positions = torch.arange(tokens.shape[1], device=tokens.device) + self.length
            kwargs["position_ids"] = positions.unsqueeze(0)
        return args, kwargs


@torch.no_grad()
def _probe(layout: EncoderLayout, hooks: dict[int, _PrefixHook], lengths: dict[int, int]) -> None:
    """One tiny forward (one padded row): every prefixed layer must attend ``n + seq`` keys."""
    model = layout.model
    device = next(layout.attention(0).parameters()).device
    if device.type == "meta":
        return
    ids = torch.tensor([[0, 1, 2]], device=device) % max(1, int(getattr(model.config, "vocab_size", 3)))
    mask = torch.tensor([[1, 1, 0]], device=device)
    import transformers

    unsupported = f"prefix tuning is not supported with transformers {transformers.__version__}"
    was_training = model.training
    model.eval()
    failure = None
    try:
        model(input_ids=ids, attention_mask=mask)
    except ConfigError:
        raise
    except Exception as err:  # noqa: BLE001 - any failure here is this release's attention API
        failure = f"{type(err).__name__}: {err}"
    finally:
        model.train(was_training)
    for i, hook in hooks.items():
        if hook.last is not None and hook.last.seen_keys is None:
            raise ConfigError(
                f"{unsupported}: layer {i}'s self-attention ignored the prefix passed as {hook.argument!r}"
            )
        seen = hook.last.seen_keys if hook.last is not None else None
        if failure is None and seen != lengths[i] + ids.shape[1]:
            raise ConfigError(
                f"{unsupported}: layer {i}'s self-attention attended {seen} keys, expected {lengths[i] + ids.shape[1]}"
            )
        hook.last = None
    if failure is not None:
        raise ConfigError(f"{unsupported}: a test forward failed: {failure}")


@torch.no_grad()
def _init_from_tokens(bank: PrefixBank, layout: EncoderLayout) -> None:
    """Start each prefix at the keys/values of random vocabulary tokens: realistic scale from step 0."""
    for i, n in bank.lengths.items():
        x = _token_states(layout, i, n)
        if x is None:
            bank.kv[str(i)].normal_(0.0, layout.model.config.initializer_range)
            continue
        key, value = (_linear_output(layout, i, t, x) for t in ("key", "value"))
        attention = layout.attention(i)
        k_norm = getattr(attention, "k_norm", None)  # Qwen3 normalises each head's keys
        if k_norm is not None:
            key = k_norm(key.view(n, -1, attention.head_dim)).view(n, -1)
        bank.kv[str(i)].copy_(torch.stack([key, value]))


def _token_states(layout: EncoderLayout, i: int, n: int) -> torch.Tensor | None:
    """What layer ``i``'s key and value projections read for ``n`` random vocabulary tokens (None: unknown)."""
    backbone = layout.backbone
    if layout.architecture.is_decoder:  # pre-norm: the layer's own input norm over the token embeddings
        words, norm = getattr(backbone, "embed_tokens", None), getattr(layout.layer(i), "input_layernorm", None)
    else:
        emb = getattr(backbone, "embeddings", None)
        words, norm = getattr(emb, "word_embeddings", None), getattr(emb, "LayerNorm", None)
    if words is None or norm is None:
        return None
    ids = torch.randint(words.num_embeddings, (n,), device=words.weight.device)
    return norm(words(ids))


def _key_width(layout: EncoderLayout) -> int:
    """Width of one layer's keys (and values): the key projection's output rows."""
    parent, attr, rows = layout.site(0, "key")
    linear = getattr(parent, attr)
    return rows.stop - rows.start if rows is not None else int(linear.out_features)


def _linear_output(layout: EncoderLayout, i: int, target: str, x: torch.Tensor) -> torch.Tensor:
    parent, attr, rows = layout.site(i, target)
    out = getattr(parent, attr)(x)
    return out if rows is None else out[..., rows]


#: peft's prefix tuning passes the prefix as a key/value cache, and BERT-style embeddings then number
#: the real tokens from the prefix length on; autopeft keeps them at 0..n-1 on encoders. The exported prefix
#: is the same tensor, but the model around it sees other positions: refused rather than silently different.
#: On decoders autopeft numbers them as peft does, and the prefix exports.
PREFIX_POSITIONS = (
    "HF peft's prefix tuning shifts the positions of the real tokens by the prefix length on this "
    "architecture (autopeft does not), so the adapter would compute other logits"
)


@register
class PrefixFamily(Family[Prefix]):
    name = "prefix"
    settings_type = Prefix
    order = 30
    unfoldable = "prefixes are extra key/value positions in the attention, not a change of existing weights"
    peft_type = "PREFIX_TUNING"
    peft_prompt = True
    placement = "sized"
    space_field = "length"
    check_settings: ClassVar[dict] = {"length": 2}

    def inject(self, layout: EncoderLayout, settings: Prefix, ctx: InjectContext) -> Injected:
        config = layout.model.config
        impl = getattr(config, "_attn_implementation", "eager") or "eager"
        if impl not in _SUPPORTED_ATTENTION:
            raise ConfigError(f"prefix tuning supports {_SUPPORTED_ATTENTION} attention, not {impl!r}")
        lengths = settings.sizes(layout.n_layers)
        width = _key_width(layout)
        bank = PrefixBank(lengths, width, settings.hidden if settings.reparameterize else None)
        bank.to(next(layout.attention(0).parameters()).device)
        if not bank.reparameterized:
            _init_from_tokens(bank, layout)
        argument = None if self._through_interface(layout) else cache_argument(layout.attention(0))
        layout.backbone.autopeft_prefix = bank
        decoder = layout.architecture.is_decoder
        heads = int(getattr(config, "num_key_value_heads", None) or config.num_attention_heads)
        hooks = {i: _PrefixHook(bank, i, heads, argument, causal=decoder) for i in lengths}
        handles = [layout.attention(i).register_forward_pre_hook(h, with_kwargs=True) for i, h in hooks.items()]
        if decoder:
            shift = _ShiftPositions(max(lengths.values()))
            handles.append(layout.backbone.register_forward_pre_hook(shift, with_kwargs=True))
        undo = [handle.remove for handle in handles]
        if argument is None:
            undo += [_route_through_interface(layout.attention(i)) for i in lengths]
        try:
            _probe(layout, hooks, lengths)
        except Exception:
            for step in undo:
                step()
            del layout.backbone.autopeft_prefix
            raise
        return Injected(modules=[bank], merge=bank.fold)

    @staticmethod
    def _through_interface(layout: EncoderLayout) -> bool:
        """No cache argument, but the attention dispatches through transformers' AttentionInterface."""
        attention = layout.attention(0)
        try:
            cache_argument(attention)
        except ConfigError:
            return dispatches_attention(attention)
        return False

    def unsupported(self, layout: EncoderLayout) -> str | None:
        attention = layout.attention(0)
        try:
            cache_argument(attention)
        except ConfigError:
            if dispatches_attention(attention):
                return None
            return (
                f"its self-attention ({type(attention).__name__}) neither takes a key/value cache nor runs through "
                "transformers' attention interface, so it cannot take extra keys"
            )
        return None

    def count(self, settings: Prefix, shape: ModelShape) -> int:
        lengths = settings.sizes(shape.n_layers)
        if not settings.reparameterize:
            return self.merged_count(settings, shape)
        h, m, n = shape.linear_shapes["key"][1], settings.hidden, len(lengths)
        return max(lengths.values()) * h + h * m + m + m * n * 2 * h + n * 2 * h

    def merged_count(self, settings: Prefix, shape: ModelShape) -> int:
        """Keys and values as wide as the key projection (the hidden size, or less under grouped-query attention)."""
        return sum(2 * n * shape.linear_shapes["key"][1] for n in settings.sizes(shape.n_layers).values())

    def size_limit(self, settings: Prefix, shape: ModelShape) -> int:
        return shape.max_positions

    def summary_size(self, sizes: str) -> str:
        return f"len {sizes}"

    def peft_refusal(
        self, families: Mapping[str, FamilySettings], layout: EncoderLayout, shape: ModelShape
    ) -> str | None:
        if not layout.architecture.is_decoder:
            return PREFIX_POSITIONS
        lengths = families[self.name].sizes(shape.n_layers)
        if len(lengths) != shape.n_layers or len(set(lengths.values())) > 1:
            return "peft's prefix tuning puts one length in every layer, and this prefix does not"
        return None

    def peft_adapter(
        self, families: Mapping[str, FamilySettings], layout: EncoderLayout, shape: ModelShape
    ) -> PeftAdapter:
        """A decoder's prefix as peft's ``prompt_embeddings``: one row per virtual token, each layer's key then value."""
        bank = layout.backbone.autopeft_prefix
        bank.fold()  # a reparameterised prefix becomes the prefixes it produces
        layers = sorted(bank.lengths)
        rows = torch.cat([bank.kv[str(i)][j] for i in layers for j in (0, 1)], dim=-1)
        config = {
            "peft_type": self.peft_type,
            "num_virtual_tokens": bank.lengths[layers[0]],
            "num_layers": len(layers),
            "token_dim": bank.hidden,
            "num_attention_heads": bank.hidden // layout.attention(0).head_dim,
            "num_transformer_submodules": 1,
            "prefix_projection": False,
            "encoder_hidden_size": shape.hidden,
        }
        return config, {"prompt_embeddings": rows}
