"""The early-stopping rule (autopeft.early_stopping): grace, peers of equal or smaller size, margin, quantile."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from autopeft.early_stopping import Decision, EarlyStoppingSettings, Peer, decide, quantile, smaller_peers

ON = EarlyStoppingSettings(enabled=True, grace=0.25, min_peers=3, quantile=0.5, margin=0.01)


def peers_at(step: int, metrics: list[float], fraction: float = 0.01) -> list[Peer]:
    return [Peer(fraction, [(step // 2, m - 0.1), (step, m)]) for m in metrics]


def ask(settings=ON, *, step=50, total=100, metric=0.5, fraction=0.02, peers=()) -> Decision:
    return decide(settings, step=step, total_steps=total, curve=[(step, metric)], param_fraction=fraction, peers=peers)


def test_defaults_are_off_and_sensible():
    s = EarlyStoppingSettings()
    assert s.enabled is False
    assert 0 < s.grace < 1 and s.min_peers >= 1 and s.margin > 0 and s.quantile == 0.5
    assert ask(s, peers=peers_at(50, [0.9, 0.9, 0.9, 0.9])).go_on  # off: never stops


def test_stops_a_trial_well_below_its_smaller_peers():
    d = ask(peers=peers_at(50, [0.8, 0.85, 0.9]))
    assert not d.go_on
    assert "below" in d.reason


def test_no_stop_within_the_grace():
    peers = peers_at(20, [0.8, 0.85, 0.9])
    assert ask(step=20, peers=peers).go_on  # 20 < 0.25 * 100
    peers = peers_at(25, [0.8, 0.85, 0.9])
    assert not ask(step=25, peers=peers).go_on  # the grace ends at 25


def test_never_at_the_last_evaluation_nor_with_an_unknown_budget_or_size():
    peers = peers_at(100, [0.8, 0.85, 0.9])
    assert ask(step=100, total=100, peers=peers).go_on
    assert ask(total=None, peers=peers_at(50, [0.8, 0.85, 0.9])).go_on
    assert ask(fraction=None, peers=peers_at(50, [0.8, 0.85, 0.9])).go_on


def test_needs_min_peers_of_equal_or_smaller_size_at_the_same_step():
    assert ask(peers=peers_at(50, [0.8, 0.9])).go_on  # two peers: not enough
    larger = peers_at(50, [0.8, 0.85, 0.9], fraction=0.05)
    assert ask(peers=larger).go_on  # larger trials do not count
    equal = peers_at(50, [0.8, 0.85, 0.9], fraction=0.02)
    assert not ask(peers=equal).go_on  # equal size counts
    elsewhere = peers_at(40, [0.8, 0.85, 0.9])
    assert ask(peers=elsewhere).go_on  # peers that did not evaluate step 50 do not count
    mixed = peers_at(50, [0.8, 0.85], fraction=0.01) + peers_at(50, [0.95, 0.95], fraction=0.03)
    assert ask(peers=mixed).go_on  # two smaller ones only


def test_margin():
    peers = peers_at(50, [0.5, 0.505, 0.51])  # median 0.505
    assert ask(metric=0.5, peers=peers).go_on  # 0.5 + 0.01 >= 0.505
    assert not ask(EarlyStoppingSettings(enabled=True, margin=0.0), metric=0.5, peers=peers).go_on
    assert ask(EarlyStoppingSettings(enabled=True, margin=0.2), metric=0.5, peers=peers_at(50, [0.6, 0.65, 0.7])).go_on


def test_never_stops_the_best_at_its_size():
    peers = peers_at(50, [0.3, 0.4, 0.5, 0.5])
    for q in (0.25, 0.5, 0.9, 1.0):
        settings = EarlyStoppingSettings(enabled=True, quantile=q, margin=0.0, min_peers=1)
        assert ask(settings, metric=0.5, peers=peers).go_on
    # ... while a trial just under the best smaller one is stopped by quantile 1 with no margin
    settings = EarlyStoppingSettings(enabled=True, quantile=1.0, margin=0.0, min_peers=1)
    assert not ask(settings, metric=0.49, peers=peers).go_on


def test_best_so_far_is_compared_not_the_last_value():
    peers = peers_at(50, [0.8, 0.85, 0.9])
    curve = [(25, 0.9), (50, 0.2)]  # it was good earlier: its kept state scores 0.9
    d = decide(ON, step=50, total_steps=100, curve=curve, param_fraction=0.02, peers=peers)
    assert d.go_on
    dipped = [Peer(0.01, [(25, 0.95), (50, 0.1)]) for _ in range(3)]  # peers' best so far counts too
    d = decide(ON, step=50, total_steps=100, curve=[(50, 0.5)], param_fraction=0.02, peers=dipped)
    assert not d.go_on


def test_quantile_and_peer_filter():
    assert quantile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert quantile([1.0, 2.0], 0.5) == 1.5
    assert quantile([1.0, 2.0, 4.0], 1.0) == 4.0
    with pytest.raises(ValueError):
        quantile([], 0.5)
    peers = [Peer(0.01, []), Peer(0.02, []), Peer(0.0200000000001, []), Peer(0.03, [])]
    assert [p.param_fraction for p in smaller_peers(0.02, peers)] == [0.01, 0.02, 0.0200000000001]


@pytest.mark.parametrize(
    "bad",
    [{"grace": -0.1}, {"grace": 1.5}, {"min_peers": 0}, {"quantile": 0}, {"margin": -1}, {"margin": math.nan}, {"x": 1}],
)
def test_settings_refuse_bad_values(bad):
    with pytest.raises(ValidationError):
        EarlyStoppingSettings(**bad)
