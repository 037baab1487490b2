"""AdaMix: stochastic routing while training, the experts' mean for inference, merged for export."""

from __future__ import annotations

import copy

import torch

from autopeft.handle import inject
from autopeft.modules import consistency_loss
from autopeft.modules.bottleneck import Bottleneck
from tests.conftest import batch, tiny_model


def _trained_adapter(experts: int = 3) -> Bottleneck:
    torch.manual_seed(0)
    adapter = Bottleneck(hidden=16, size=4, experts=experts)
    with torch.no_grad():
        for p in adapter.parameters():
            p.add_(torch.randn_like(p))
    return adapter


def test_routing_is_stochastic_in_training_and_fixed_in_evaluation():
    adapter = _trained_adapter().train()
    x = torch.randn(5, 16)
    torch.manual_seed(1)
    routed = {tuple(adapter(x).flatten()[:3].tolist()) for _ in range(12)}
    assert len(routed) > 1
    adapter.eval()
    assert torch.equal(adapter(x), adapter(x))


def test_inference_uses_the_mean_of_the_experts():
    adapter = _trained_adapter().eval()
    x = torch.randn(5, 16)
    down = x @ adapter.down_weight.mean(0).T + adapter.down_bias.mean(0)
    expected = torch.relu(down) @ adapter.up_weight.mean(0).T + adapter.up_bias.mean(0)
    assert torch.allclose(adapter(x), expected, atol=1e-6)


def test_merge_averages_experts_into_one_adapter_with_the_same_outputs():
    adapter = _trained_adapter().eval()
    means = {n: p.detach().mean(0) for n, p in adapter.named_parameters()}
    x = torch.randn(5, 16)
    before = adapter(x)
    adapter.merge()
    assert adapter.experts == 1
    for name, p in adapter.named_parameters():
        assert torch.equal(p.detach()[0], means[name])
    assert torch.allclose(adapter(x), before, atol=1e-6)
    adapter.train()  # a merged adapter is deterministic even in training mode
    assert torch.equal(adapter(x), adapter(x))


def test_model_with_adamix_merges_to_single_expert_counts_and_same_logits():
    model = tiny_model("bert")
    handle = inject(model, {"serial_adapter": {"size": 4, "experts": 4}})
    assert handle.stochastic
    with torch.no_grad():
        for p in handle.peft_parameters()["serial_adapter"]:
            p.add_(torch.randn_like(p) * 0.1)
    ids, mask = batch()
    model.eval()
    before = model(input_ids=ids, attention_mask=mask).logits
    estimated_merged = handle.accounting().merged_params
    handle.merge()
    assert not handle.stochastic
    assert handle.accounting().peft_params == estimated_merged == 3 * (2 * 32 * 4 + 4 + 32)
    assert torch.allclose(model(input_ids=ids, attention_mask=mask).logits, before, atol=1e-6)


def test_consistency_loss_is_symmetric_zero_on_agreement_and_positive_otherwise():
    a, b = torch.randn(4, 3), torch.randn(4, 3)
    assert consistency_loss(a, a).item() == 0.0
    assert consistency_loss(a, b).item() > 0
    assert torch.isclose(consistency_loss(a, b), consistency_loss(b, a))
    assert consistency_loss(a[:, :1], b[:, :1]) > 0  # regression: squared difference


def test_two_training_passes_differ_so_the_consistency_term_has_signal():
    model = tiny_model("bert")
    handle = inject(copy.deepcopy(model), {"serial_adapter": {"size": 4, "experts": 4}})
    with torch.no_grad():
        for p in handle.peft_parameters()["serial_adapter"]:
            p.add_(torch.randn_like(p) * 0.5)
    handle.model.train()
    ids, mask = batch()
    torch.manual_seed(3)
    first = handle.model(input_ids=ids, attention_mask=mask).logits
    second = handle.model(input_ids=ids, attention_mask=mask).logits
    assert consistency_loss(first, second).item() > 0
