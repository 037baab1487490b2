"""HF peft's adapter format, as far as the families' peft export hooks need it.

A peft adapter is ``adapter_config.json`` and ``adapter_model.safetensors``: nothing here imports peft.
Each family that peft also has writes its own part (:meth:`autopeft.modules.base.Family.peft_adapter`);
:mod:`autopeft.export` adds the task fields and the head, and writes the files.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from autopeft.encoder import EncoderLayout

#: The prefix of every key in a peft adapter file of a non-prompt-learning method (prompt learning: ``base_model.``).
PEFT_PREFIX = "base_model.model."
PROMPT_PREFIX = "base_model."
ADAPTER_CONFIG, ADAPTER_WEIGHTS = "adapter_config.json", "adapter_model.safetensors"
#: A family's part of an adapter: its ``adapter_config.json`` fields and its tensors by peft key.
PeftAdapter = tuple[dict[str, Any], dict[str, "torch.Tensor"]]


def module_regex(layout: EncoderLayout, targets: list[str], layers: list[int]) -> str:
    """peft's ``target_modules`` as a regex: these linear layers of these layers (the model's own paths)."""
    arch = layout.architecture
    chosen = "|".join(str(i) for i in layers)
    paths = "|".join(re.escape(arch.linears[t].path) for t in targets)
    return rf".*\.{re.escape(arch.layers)}\.({chosen})\.({paths})$"


def head_modules(layout: EncoderLayout) -> list[str]:
    """The task head's top-level modules (peft's ``modules_to_save``)."""
    return sorted({name.split(".")[0] for name, _ in layout.head_named_parameters()})
