"""gptlab.scaling: the Chinchilla-form fit recovers known parameters; the compute-optimal split; bad inputs."""

from __future__ import annotations

import itertools

import pytest
import torch

from gptlab.scaling import ScalingFit, bootstrap_scaling_law, fit_scaling_law, huber

TRUE = dict(E=1.2, A=60.0, alpha=0.45, B=300.0, beta=0.35)


def synthetic(noise: float = 0.0, seed: int = 0):
    Ns = [2e3, 5e3, 1e4, 3e4, 1e5, 3e5]
    Ds = [1e5, 4e5, 1.6e6, 6.4e6]
    N, D = zip(*itertools.product(Ns, Ds))
    L = ScalingFit(**TRUE, objective=0.0).predict(N, D)
    if noise:
        L = L * torch.exp(noise * torch.randn(len(L), generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return list(N), list(D), L.tolist()


def test_recovers_exact_parameters():
    fit = fit_scaling_law(*synthetic(), steps=800)
    for k, v in TRUE.items():
        assert getattr(fit, k) == pytest.approx(v, rel=0.02), k
    assert fit.objective < 1e-8


def test_recovers_exponents_under_noise():
    N, D, L = synthetic(noise=0.01, seed=1)
    fit = fit_scaling_law(N, D, L, steps=800)
    assert fit.alpha == pytest.approx(TRUE["alpha"], abs=0.1)
    assert fit.beta == pytest.approx(TRUE["beta"], abs=0.1)
    assert fit.E == pytest.approx(TRUE["E"], abs=0.15)
    # the fit explains the data to about the noise level
    rel = (fit.predict(N, D) / torch.tensor(L) - 1).abs().max().item()
    assert rel < 0.04


def test_compute_optimal_minimises_loss_on_the_budget():
    fit = ScalingFit(**TRUE, objective=0.0)
    C = 1e15
    n_opt, d_opt = fit.compute_optimal(C)
    assert (6 * n_opt * d_opt).item() == pytest.approx(C, rel=1e-9)
    Ns = torch.logspace(2, 10, 4001, dtype=torch.float64)
    losses = fit.predict(Ns, C / (6 * Ns))
    assert Ns[torch.argmin(losses)].item() == pytest.approx(n_opt.item(), rel=0.01)
    # more compute -> a bigger model, growing as C^(beta/(alpha+beta))
    n2, _ = fit.compute_optimal(100 * C)
    assert (n2 / n_opt).item() == pytest.approx(100 ** (TRUE["beta"] / (TRUE["alpha"] + TRUE["beta"])), rel=1e-9)


def test_huber_is_quadratic_then_linear():
    x = torch.tensor([0.0, 0.5, -2.0, 3.0], dtype=torch.float64)
    assert huber(x, 1.0).tolist() == [0.0, 0.125, 1.5, 2.5]


@pytest.mark.parametrize(
    "N, D, L, match",
    [
        ([1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4], "at least 5 runs"),
        ([1, 2, 3, 4, 5], [1, 2, 3, 4, 5], [1, 2, 3, 4], "one entry per run"),
        ([1, 2, 3, 4, -5], [1, 2, 3, 4, 5], [1, 2, 3, 4, 5], "N must hold finite, positive"),
        ([1, 2, 3, 4, 5], [1, 2, 3, 4, 5], [1, 2, float("nan"), 4, 5], "L must hold finite, positive"),
        ([1, 1, 1, 1, 1], [1, 2, 3, 4, 5], [1, 2, 3, 4, 5], "2 distinct model sizes"),
    ],
)
def test_bad_inputs(N, D, L, match):
    with pytest.raises(ValueError, match=match):
        fit_scaling_law(N, D, L, steps=1)


def test_bad_types_and_options():
    with pytest.raises(TypeError, match="N must be a sequence"):
        fit_scaling_law("12345", [1, 2, 3, 4, 5], [1, 2, 3, 4, 5])
    N, D, L = synthetic()
    with pytest.raises(ValueError, match="delta"):
        fit_scaling_law(N, D, L, delta=0)
    with pytest.raises(ValueError, match="steps"):
        fit_scaling_law(N, D, L, steps=0)
    with pytest.raises(ValueError, match="C"):
        ScalingFit(**TRUE, objective=0.0).compute_optimal(0)


def runs_with_seed_noise(n_seeds: int = 3, noise: float = 0.02):
    """Each (size, seed) run is read at 4 budgets; a run's points share one offset (a lucky seed is lucky throughout)."""
    Ns = [2e3, 5e3, 1e4, 3e4, 1e5, 3e5]
    Ds = [1e5, 4e5, 1.6e6, 6.4e6]
    g = torch.Generator().manual_seed(0)
    N, D, L, run = [], [], [], []
    for r, (n, _) in enumerate(itertools.product(Ns, range(n_seeds))):
        shift = 1 + noise * torch.randn((), generator=g, dtype=torch.float64).item()
        for d in Ds:
            N.append(n), D.append(d), run.append(r)
            L.append(ScalingFit(**TRUE, objective=0.0).predict(n, d).item() * shift)
    return N, D, L, run


def test_bootstrap_resamples_runs_within_sizes():
    N, D, L, run = runs_with_seed_noise()
    fits = bootstrap_scaling_law(N, D, L, run, n_boot=6, seed=1, steps=300)
    again = bootstrap_scaling_law(N, D, L, run, n_boot=6, seed=1, steps=300)
    assert len(fits) == 6 and fits == again  # a seed gives the same resamples and fits
    alphas = [f.alpha for f in fits]
    assert max(alphas) - min(alphas) > 1e-3  # resamples differ, so the fits spread
    # noiseless runs: every resample holds the same curve, so every fit recovers it
    N0, D0, L0, run0 = runs_with_seed_noise(noise=0.0)
    for f in bootstrap_scaling_law(N0, D0, L0, run0, n_boot=2, steps=800):
        assert f.alpha == pytest.approx(TRUE["alpha"], rel=0.05) and f.beta == pytest.approx(TRUE["beta"], rel=0.05)


def test_bootstrap_bad_inputs():
    N, D, L, run = runs_with_seed_noise(n_seeds=1)
    with pytest.raises(ValueError, match="single run"):
        bootstrap_scaling_law(N, D, L, run, n_boot=2)
    N, D, L, run = runs_with_seed_noise(n_seeds=2)
    with pytest.raises(ValueError, match="one entry per point"):
        bootstrap_scaling_law(N, D, L, run[:-1], n_boot=2)
    with pytest.raises(ValueError, match="different N"):
        bootstrap_scaling_law(N, D, L, [0] * len(N), n_boot=2)
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_scaling_law(N, D, L, run, n_boot=0)
