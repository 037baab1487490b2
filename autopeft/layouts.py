"""Model layouts: where each architecture keeps the parts the PEFT families touch.

One :class:`Architecture` per family of Hugging Face encoders (BERT and its kin) and decoder
LLMs (Llama and its kin), chosen from the model's ``config.model_type``: where its layers are,
where each of the linear layers the families name is inside a layer (a part of a fused linear,
as ModernBERT's ``Wqkv``, included), where the feed-forward block is that serial and parallel
adapters wrap, where the self-attention is that prefix tuning feeds, and what the task head is.
Encoders name their linears ``query``, ``key``, ``value``, ``attention_output``,
``intermediate`` and ``output``; decoders ``query``, ``key``, ``value``, ``attention_output``
(``o_proj``) and the MLP's ``gate``, ``up`` and ``down``. Adding an architecture is one entry
in :data:`ARCHITECTURES` (and a tiny configuration of it in ``example``, which the support
matrix and the tests build).

What a family needs beyond these paths (a key/value cache argument for prefix tuning,
bias terms for BitFit) is read from the model's modules by the family itself
(:meth:`autopeft.modules.base.Family.unsupported`); ``refused`` holds what an
architecture rules out whatever its modules say.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from autopeft.errors import ModelError


@dataclass(frozen=True)
class LinearPath:
    """Where a named linear layer is inside one encoder layer.

    ``part``: ``(k, n)`` when the layer is the k-th of n equal blocks of output rows of a
    fused linear (ModernBERT's ``Wqkv``: query, key and value are parts 0, 1 and 2 of 3).
    """

    path: str
    part: tuple[int, int] | None = None

    @property
    def parent(self) -> str:
        return self.path.rpartition(".")[0]

    @property
    def attr(self) -> str:
        return self.path.rpartition(".")[2]


#: How the feed-forward block the adapters wrap is called: ``output`` is BERT's output block
#: ``(hidden_states, input_tensor)`` with dense, dropout and the residual LayerNorm inside;
#: ``block`` is a module whose output is the feed-forward result before the residual, its
#: input the feed-forward block's input (DistilBERT's ``ffn``, ModernBERT's ``mlp``).
FeedForwardKind = Literal["output", "block"]
#: An encoder attends both ways and pools a first token; a decoder is causal, pools its last
#: non-padding token (transformers' ``*ForSequenceClassification``) and numbers a prefix's
#: positions before the real tokens (as a key/value cache would).
ModelKind = Literal["encoder", "decoder"]


@dataclass(frozen=True)
class Architecture:
    """Where the parts of one architecture's sequence classifier are (paths inside a layer)."""

    name: str
    model_types: tuple[str, ...]
    #: The list of layers, as a path below the backbone (``model.base_model``).
    layers: str
    linears: Mapping[str, LinearPath]
    #: The feed-forward block serial and parallel adapters wrap, and how it is called.
    feed_forward: str
    feed_forward_kind: FeedForwardKind
    #: The self-attention prefix tuning hooks.
    attention: str
    #: The task head, for people (it is everything outside the backbone).
    head: str
    #: Tiny configuration of this architecture (``AutoConfig.for_model(model_types[0], **example)``),
    #: built by the support matrix and the tests.
    example: Mapping[str, Any] = field(default_factory=dict)
    #: Families ruled out on this architecture whatever its modules say: family -> reason.
    refused: Mapping[str, str] = field(default_factory=dict)
    kind: ModelKind = "encoder"
    #: The linear of the feed-forward block whose input is its activations (what (IA)³ scales on its input).
    feed_forward_output: str = "output"

    @property
    def model_type(self) -> str:
        return self.model_types[0]

    @property
    def is_decoder(self) -> bool:
        return self.kind == "decoder"

    def required_paths(self) -> tuple[str, ...]:
        """Modules every layer must have (an ``output`` block: also its dropout and residual LayerNorm)."""
        block = (f"{self.feed_forward}.dropout", f"{self.feed_forward}.LayerNorm")
        extra = block if self.feed_forward_kind == "output" else ()
        return (*dict.fromkeys(p.path for p in self.linears.values()), self.feed_forward, *extra, self.attention)

    def example_config(self, **overrides: Any) -> Any:
        """A tiny random configuration of this architecture (transformers' config class)."""
        from transformers import AutoConfig

        return AutoConfig.for_model(self.model_type, **{**self.example, **overrides})


def _linears(**paths: str | LinearPath) -> dict[str, LinearPath]:
    return {t: p if isinstance(p, LinearPath) else LinearPath(p) for t, p in paths.items()}


_BERT_LINEARS = _linears(
    query="attention.self.query",
    key="attention.self.key",
    value="attention.self.value",
    attention_output="attention.output.dense",
    intermediate="intermediate.dense",
    output="output.dense",
)
_TINY = dict(
    vocab_size=120,
    hidden_size=32,
    num_hidden_layers=3,
    num_attention_heads=4,
    intermediate_size=48,
    max_position_embeddings=80,
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
)


def _bert_like(name: str, model_type: str, head: str, **example: Any) -> Architecture:
    return Architecture(
        name=name,
        model_types=(model_type,),
        layers="encoder.layer",
        linears=_BERT_LINEARS,
        feed_forward="output",
        feed_forward_kind="output",
        attention="attention.self",
        head=head,
        example={**_TINY, **example},
    )


_DECODER_LINEARS = _linears(
    query="self_attn.q_proj",
    key="self_attn.k_proj",
    value="self_attn.v_proj",
    attention_output="self_attn.o_proj",
    gate="mlp.gate_proj",
    up="mlp.up_proj",
    down="mlp.down_proj",
)
#: Grouped-query attention (2 key/value heads for 4 query heads), as the real models have.
_TINY_DECODER = dict(
    vocab_size=120,
    hidden_size=32,
    num_hidden_layers=3,
    num_attention_heads=4,
    num_key_value_heads=2,
    intermediate_size=48,
    max_position_embeddings=80,
    pad_token_id=0,
    tie_word_embeddings=False,
)


def _llama_like(name: str, model_type: str, **example: Any) -> Architecture:
    """A pre-norm decoder: adapters wrap the MLP (its output is added to the residual outside it)."""
    return Architecture(
        name=name,
        model_types=(model_type,),
        layers="layers",
        linears=_DECODER_LINEARS,
        feed_forward="mlp",
        feed_forward_kind="block",
        attention="self_attn",
        head="score",
        example={**_TINY_DECODER, **example},
        kind="decoder",
        feed_forward_output="down",
    )


ARCHITECTURES: dict[str, Architecture] = {
    a.model_type: a
    for a in [
        _bert_like("BERT", "bert", "classifier"),
        _bert_like("RoBERTa", "roberta", "classifier.dense, classifier.out_proj", pad_token_id=1),
        _bert_like("XLM-R", "xlm-roberta", "classifier.dense, classifier.out_proj", pad_token_id=1),
        _bert_like("ELECTRA", "electra", "classifier.dense, classifier.out_proj", embedding_size=32),
        Architecture(
            name="DistilBERT",
            model_types=("distilbert",),
            layers="transformer.layer",
            linears=_linears(
                query="attention.q_lin",
                key="attention.k_lin",
                value="attention.v_lin",
                attention_output="attention.out_lin",
                intermediate="ffn.lin1",
                output="ffn.lin2",
            ),
            feed_forward="ffn",
            feed_forward_kind="block",
            attention="attention",
            head="pre_classifier, classifier",
            example=dict(
                vocab_size=120, dim=32, n_layers=3, n_heads=4, hidden_dim=48, max_position_embeddings=80,
                dropout=0.0, attention_dropout=0.0,
            ),  # fmt: skip
        ),
        Architecture(
            name="DeBERTa-v2/v3",
            model_types=("deberta-v2",),
            layers="encoder.layer",
            linears=_linears(
                query="attention.self.query_proj",
                key="attention.self.key_proj",
                value="attention.self.value_proj",
                attention_output="attention.output.dense",
                intermediate="intermediate.dense",
                output="output.dense",
            ),
            feed_forward="output",
            feed_forward_kind="output",
            attention="attention.self",
            head="pooler.dense, classifier",
            example={  # DeBERTa-v3's settings: shared relative-position keys, log buckets, no token types
                **_TINY,
                "relative_attention": True,
                "pos_att_type": ["p2c", "c2p"],
                "position_buckets": 16,
                "max_relative_positions": -1,
                "share_att_key": True,
                "norm_rel_ebd": "layer_norm",
                "position_biased_input": False,
                "type_vocab_size": 0,
            },
        ),
        Architecture(
            name="ModernBERT",
            model_types=("modernbert",),
            layers="layers",
            linears=_linears(
                query=LinearPath("attn.Wqkv", (0, 3)),
                key=LinearPath("attn.Wqkv", (1, 3)),
                value=LinearPath("attn.Wqkv", (2, 3)),
                attention_output="attn.Wo",
                intermediate="mlp.Wi",
                output="mlp.Wo",
            ),
            feed_forward="mlp",
            feed_forward_kind="block",
            attention="attn",
            head="head (dense, norm), classifier",
            example=dict(
                vocab_size=120, hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=48,
                max_position_embeddings=80, pad_token_id=0, bos_token_id=2, eos_token_id=3, cls_token_id=2,
                sep_token_id=3, global_attn_every_n_layers=2, local_attention=16,
            ),  # fmt: skip
        ),
        _llama_like("Llama (SmolLM2)", "llama"),
        _llama_like("Mistral", "mistral", sliding_window=None),
        _llama_like("Qwen2", "qwen2"),  # biases on q, k and v
        _llama_like("Qwen3", "qwen3", head_dim=8),  # q/k RMSNorm; head_dim given, not hidden / heads
    ]
}
_BY_MODEL_TYPE = {t: a for a in ARCHITECTURES.values() for t in a.model_types}


def supported_model_types() -> list[str]:
    return list(_BY_MODEL_TYPE)


def architecture_for(model_type: str | None) -> Architecture:
    """The layout of ``model_type``, or a one-line :class:`ModelError` naming it and the supported ones."""
    arch = _BY_MODEL_TYPE.get(str(model_type))
    if arch is None:
        raise ModelError(
            f"unsupported architecture {model_type!r}: autopeft supports the model types "
            f"{', '.join(supported_model_types())}"
        )
    return arch
