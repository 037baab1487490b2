"""The optimiser's parts: transforms, reference point, kernel, discrete search, cached qLogNEHVI."""

from __future__ import annotations

import pytest
import torch

from autopeft.optimize.discrete import combined, first_new, line_moves, local_search, neighbours
from autopeft.optimize.domain import GridDomain, from_index, snap, to_index
from autopeft.optimize.kernels import AdditiveGridKernel
from autopeft.optimize.reference import acquisition_reference
from autopeft.optimize.transforms import copula, fit_transform


def t(rows):
    return torch.tensor(rows, dtype=torch.double)


def test_copula_gives_normal_scores_of_ranks_and_shares_ties():
    z = copula(t([[3.0], [1.0], [2.0], [2.0]]))[:, 0]
    assert z[1] < z[2] == z[3] < z[0]
    assert z[2] == pytest.approx(0.0) and z[0] == pytest.approx(-z[1])


def test_fitted_transform_maps_points_monotonically():
    y = t([[0.6, 1.0], [0.7, 2.0], [0.9, 4.0]])
    for kind in ("copula", "standardize"):
        z, tf = fit_transform(y, kind)
        mapped = torch.stack([tf.map_point(row) for row in y])
        assert torch.allclose(mapped, z)
        lo, mid, hi = (tf.map_point(t(p)) for p in ([0.5, 0.5], [0.8, 3.0], [1.0, 9.0]))
        assert (
            (lo < z.min(0).values).all() and (z[1] < mid).all() and (mid < z[2]).all() and (hi > z.max(0).values).all()
        )


def test_reference_override_replaces_only_the_given_coordinate():
    y = t([[0.6, 3.0], [0.7, 2.0], [0.8, 1.0]])
    z, tf = fit_transform(y, "standardize")
    auto = acquisition_reference(z, tf)
    assert (auto < z.min(0).values).all()
    fixed = acquisition_reference(z, tf, t([0.65, float("nan")]))
    assert fixed[0] == pytest.approx(float(tf.map_point(t([0.65, 0.0]))[0]))
    assert fixed[1] == auto[1]


def test_bins_and_centres_round_trip():
    cards = t([2, 5, 10])
    X = t([[0.0, 0.5, 0.999], [0.7, 0.2, 1.0]])
    idx = to_index(X, cards)
    assert idx.tolist() == [[0, 2, 9], [1, 1, 9]]
    assert torch.equal(to_index(from_index(idx, cards), cards), idx)
    assert torch.equal(snap(snap(X, cards), cards), snap(X, cards))


def test_additive_grid_kernel_equals_the_sum_of_one_dimensional_rbf_kernels():
    cards = [3, 7, 2]
    k = AdditiveGridKernel(cards).double()
    k.raw_weights.data = t([0.3, -1.0, 0.5])
    k.lengthscale = t([[0.2, 0.5, 1.5]])
    X = snap(torch.rand(9, 3, dtype=torch.double), t(cards))
    with torch.no_grad():
        direct = torch.exp(-0.5 * ((X.unsqueeze(-2) - X.unsqueeze(-3)) / k.lengthscale).pow(2)) @ k.weights
        assert torch.allclose(k(X, X).to_dense(), direct)
        assert torch.allclose(k(X, X, diag=True), torch.ones(9, dtype=torch.double))


def test_neighbours_change_exactly_one_coordinate():
    cards = t([3, 4])
    move = line_moves(cards)
    assert move.shape == (7, 2)
    nb, changed = neighbours(torch.tensor([[1, 2]]), move)
    diffs = (nb[0] != torch.tensor([1, 2])).sum(-1)
    assert torch.equal(diffs == 1, changed[0]) and int(changed.sum()) == 5


def test_local_search_climbs_a_separable_function_to_its_maximum():
    cards = t([9, 9, 9, 9, 9])
    target = torch.tensor([1, 7, 4, 0, 8])

    def acqf(X):
        return -((to_index(X.squeeze(-2), cards) - target).abs().sum(-1)).double()

    start = torch.tensor([[4, 4, 4, 4, 4]])
    idx, vals = local_search(acqf, start, acqf(from_index(start, cards).unsqueeze(-2)), cards, steps=3)
    assert vals.max() == 0 and torch.equal(idx[int(torch.argmax(vals))], target)


def test_combined_applies_the_best_improving_move_of_several_dimensions():
    move = line_moves(t([3, 3, 3]))
    gains = torch.full((9,), -1.0, dtype=torch.double)
    gains[2], gains[3], gains[7] = 0.5, 0.2, 0.1  # dim0 -> 2, dim1 -> 0, dim2 -> 1
    combos = combined(torch.tensor([1, 1, 1]), move, gains)
    assert combos.tolist() == [[2, 0, 1], [2, 0, 1]][: combos.shape[0]] and combos.shape[0] >= 1


def test_first_new_skips_taken_points():
    domain, cards = GridDomain([4, 4]), t([4, 4])
    idx = torch.tensor([[0, 0], [1, 1], [2, 2]])
    vals = t([3.0, 2.0, 1.0])
    taken = {domain.key(from_index(idx[0], cards).tolist())}
    got = first_new(idx, vals, cards, lambda x: domain.key(x.tolist()), taken)
    assert got.tolist() == [1, 1]
    taken |= {domain.key(from_index(i, cards).tolist()) for i in idx}
    assert first_new(idx, vals, cards, lambda x: domain.key(x.tolist()), taken) is None


def test_botorch_acquisition_never_compiles_its_cpp_kernel(tmp_path, monkeypatch):
    """botorch JIT-compiles a C++ kernel on first use (a 40 s stall, a compiler, a lock file that
    hangs every later proposal when the compile is interrupted): proposals use the pure path."""
    from botorch.acquisition.multi_objective import logei

    from autopeft.optimize.acquisition import build_acquisition
    from autopeft.optimize.gp import fit_gp_list

    monkeypatch.setattr(logei, "_C", None)
    monkeypatch.setattr(logei, "_load_attempted", False)
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    torch.manual_seed(0)
    cards = [6, 6, 6]
    X = snap(torch.rand(12, 3, dtype=torch.double), t(cards))
    Y = torch.stack([-(X - 0.3).pow(2).sum(-1), -(X - 0.7).pow(2).sum(-1)], -1)
    model = fit_gp_list(X, Y, cards, None, False)
    acqf = build_acquisition(model, X, Y, Y.min(0).values - 0.1, X[:0], 64, 32, 0, cached=False)
    values = acqf(snap(torch.rand(8, 3, dtype=torch.double), t(cards)).unsqueeze(-2))
    assert values.shape == (8,) and torch.isfinite(values).any()
    assert logei._C is None and list(tmp_path.iterdir()) == []


def test_cached_nehvi_agrees_with_botorch_qlognehvi():
    from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement
    from botorch.sampling.normal import SobolQMCNormalSampler
    from scipy.stats import spearmanr

    from autopeft.optimize.acquisition import use_pure_torch_kernel
    from autopeft.optimize.gp import fit_gp_list
    from autopeft.optimize.nehvi import FastLogNEHVI

    use_pure_torch_kernel()

    torch.manual_seed(0)
    cards = [6, 6, 6]
    X = snap(torch.rand(24, 3, dtype=torch.double), t(cards))
    Y = torch.stack([-(X - 0.3).pow(2).sum(-1), -(X - 0.7).pow(2).sum(-1)], -1) + 0.01 * torch.randn(24, 2).double()
    model = fit_gp_list(X, Y, cards, None, False)
    ref = Y.min(0).values - 0.1
    pending = snap(torch.rand(2, 3, dtype=torch.double), t(cards))
    theirs = qLogNoisyExpectedHypervolumeImprovement(
        model, ref, X, sampler=SobolQMCNormalSampler(torch.Size([512]), seed=0), X_pending=pending, cache_root=True
    )
    ours = FastLogNEHVI(list(model.models), torch.cat([X, pending]), ref, 512, seed=1)
    cand = snap(torch.rand(60, 3, dtype=torch.double), t(cards)).unsqueeze(-2)
    with torch.no_grad():
        a, b = theirs(cand), ours(cand)
    # where improvement is likely (log EHVI > -10) both estimate the same value up to MC error
    top = torch.nonzero(a > -10).flatten()
    assert top.numel() >= 5
    assert spearmanr(a[top].numpy(), b[top].numpy()).statistic > 0.9
    assert torch.allclose(a[top], b[top], atol=0.2), torch.stack([a[top], b[top]])
    # points that improve under no sample rank below every point that improves under some
    assert b[a < -30].max() < b[top].min()


def test_a_failing_gp_fit_falls_back_instead_of_failing_the_proposal(monkeypatch):
    """A fit that leaves a prior's support (seen at 500 DTLZ2 trials) must not end the study's proposals."""
    import botorch.fit

    from autopeft.optimize import gp

    calls = []

    def flaky(mll, **kw):
        calls.append(1)
        raise ValueError("Expected value argument to be within the support of LogNormalPrior()")

    monkeypatch.setattr(botorch.fit, "fit_gpytorch_mll", flaky)
    X = torch.rand(12, 3, dtype=torch.double)
    z = X.sum(-1, keepdim=True)
    model, warm = gp._fit_one(X, z, None, "rbf+additive", [4, 4, 4])
    assert len(calls) == 2 and not warm  # tried, refitted cold, then kept the default hyperparameters
    mean = model.posterior(X).mean
    assert torch.isfinite(mean).all()


def test_output_scales_cannot_reach_zero():
    from autopeft.optimize.kernels import OUTPUTSCALE_FLOOR, make_kernel

    kernel = make_kernel("rbf+additive", [3, 5])
    for part in kernel.kernels:
        part.raw_outputscale.data.fill_(-1e4)  # what an L-BFGS step far into the negatives leaves
        assert part.outputscale.item() >= 0.99 * OUTPUTSCALE_FLOOR  # float32 parameter: not exactly 1e-4
