"""Scaling laws: fit L(N, D) = E + A / N^alpha + B / D^beta and find the compute-optimal size (lesson 15).

The form is Hoffmann et al.'s (2022, "Chinchilla", approach 3): E is the fit's
asymptote, the loss it predicts for unlimited N and D (an estimate of the text's
entropy only when the runs reach close to it; a fit to small, short runs puts it
wherever the curvature of its few points says), A / N^alpha what a model of N
parameters lacks with unlimited data, B / D^beta what D training tokens lack
with an unlimited model. Fitted as they did: minimise the Huber loss between
log L and log of the prediction, written as
log L = logsumexp(a - alpha log N, b - beta log D, e) with A = e^a, B = e^b,
E = e^e, so every term stays positive; start from a grid of initial guesses
(the objective has several local minima) and keep the best. Only torch, no scipy.
`bootstrap_scaling_law` refits on runs drawn with replacement: the spread of its
fits is the uncertainty a handful of noisy runs leaves in the exponents.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Sequence

import torch


@dataclass(frozen=True)
class ScalingFit:
    """L(N, D) = E + A / N**alpha + B / D**beta, and the Huber objective it reached."""

    E: float
    A: float
    alpha: float
    B: float
    beta: float
    objective: float

    def predict(self, N, D) -> torch.Tensor:
        """Predicted loss for parameter counts N and token counts D (numbers or tensors, broadcast)."""
        N = torch.as_tensor(N, dtype=torch.float64)
        D = torch.as_tensor(D, dtype=torch.float64)
        return self.E + self.A / N**self.alpha + self.B / D**self.beta

    def compute_optimal(self, C) -> tuple[torch.Tensor, torch.Tensor]:
        """(N_opt, D_opt) minimising L(N, D) under the budget C = 6 N D FLOPs.

        Substituting D = C / (6N) and setting dL/dN = 0 gives Hoffmann et al.'s eq. 4:
        N_opt = G (C/6)^(beta/(alpha+beta)), D_opt = (C/6)^(alpha/(alpha+beta)) / G,
        G = (alpha A / (beta B))^(1/(alpha+beta)). The ratio a = beta/(alpha+beta) is the
        exponent that says how model size should grow with compute.
        """
        C = torch.as_tensor(C, dtype=torch.float64)
        if (C <= 0).any():
            raise ValueError("C (compute in FLOPs) must be positive")
        s = self.alpha + self.beta
        G = (self.alpha * self.A / (self.beta * self.B)) ** (1 / s)
        return G * (C / 6) ** (self.beta / s), (C / 6) ** (self.alpha / s) / G


def _as_positive(values: Sequence[float] | torch.Tensor, name: str) -> torch.Tensor:
    if isinstance(values, (str, bytes)):
        raise TypeError(f"{name} must be a sequence of numbers, got {type(values).__name__}")
    try:
        t = torch.as_tensor(values, dtype=torch.float64).flatten()
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name} must be a sequence of numbers: {e}") from None
    if not torch.isfinite(t).all() or (t <= 0).any():
        raise ValueError(f"{name} must hold finite, positive numbers (got min {t.min().item():g})")
    return t


def huber(x: torch.Tensor, delta: float) -> torch.Tensor:
    """Quadratic for |x| <= delta, linear beyond: outliers pull the fit less than in least squares."""
    a = x.abs()
    return torch.where(a <= delta, 0.5 * x**2, delta * (a - 0.5 * delta))


def fit_scaling_law(
    N: Sequence[float] | torch.Tensor,
    D: Sequence[float] | torch.Tensor,
    L: Sequence[float] | torch.Tensor,
    *,
    delta: float = 1e-3,
    steps: int = 1500,
) -> ScalingFit:
    """Fit E + A/N^alpha + B/D^beta to runs with N parameters, D training tokens and final loss L.

    N, D, L: one entry per run (at least 5 runs, the number of free parameters,
    with at least 2 distinct N and 2 distinct D). delta: the Huber threshold on
    the log-loss residual (Hoffmann et al. use 1e-3). steps: Adam steps from each
    of the grid's starting points (all optimised at once as one batch), after
    which L-BFGS polishes the best.
    """
    N, D, L = _as_positive(N, "N"), _as_positive(D, "D"), _as_positive(L, "L")
    if not len(N) == len(D) == len(L):
        raise ValueError(f"N, D and L must have one entry per run; got lengths {len(N)}, {len(D)}, {len(L)}")
    if len(N) < 5:
        raise ValueError(f"need at least 5 runs to fit 5 parameters, got {len(N)}")
    if len(torch.unique(N)) < 2 or len(torch.unique(D)) < 2:
        raise ValueError("need at least 2 distinct model sizes N and 2 distinct token counts D: "
                         "otherwise alpha or beta is not identifiable")
    if not delta > 0:
        raise ValueError(f"delta must be > 0, got {delta}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    logN, logD, logL = N.log(), D.log(), L.log()

    def objective(p: torch.Tensor) -> torch.Tensor:  # p: (K, 5) = a, alpha, b, beta, e -> (K,)
        a, alpha, b, beta, e = p.unbind(-1)
        pred = torch.logsumexp(torch.stack([a[:, None] - alpha[:, None] * logN,
                                            b[:, None] - beta[:, None] * logD,
                                            e[:, None].expand(-1, len(N))]), dim=0)
        return huber(pred - logL, delta).sum(-1)

    # A grid of starting points in the spirit of Hoffmann et al.'s (coarser: this runs in a lesson).
    grid = list(itertools.product([0.0, 5.0, 10.0, 15.0], [0.2, 0.5, 1.0], [0.0, 5.0, 10.0, 15.0], [0.2, 0.5, 1.0], [-1.0, 0.0, 1.0]))
    p = torch.tensor(grid, dtype=torch.float64)
    p[:, 4] += logL.min().item()  # e starts near the smallest observed log-loss
    p.requires_grad_(True)
    opt = torch.optim.Adam([p], lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        objective(p).sum().backward()  # the K problems are independent: summing keeps their gradients apart
        opt.step()
    with torch.no_grad():
        best = p[torch.argmin(objective(p))].clone()
    q = best[None].clone().requires_grad_(True)
    lbfgs = torch.optim.LBFGS([q], lr=1.0, max_iter=500, tolerance_grad=1e-12, tolerance_change=1e-15, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        lbfgs.zero_grad()
        f = objective(q).sum()
        f.backward()
        return f

    lbfgs.step(closure)
    with torch.no_grad():
        if not torch.isfinite(q).all() or objective(q).item() > objective(best[None]).item():
            q = best[None]
        a, alpha, b, beta, e = (float(v) for v in q[0])
        obj = objective(q).item()
    return ScalingFit(E=math.exp(e), A=math.exp(a), alpha=alpha, B=math.exp(b), beta=beta, objective=obj)


def bootstrap_scaling_law(
    N: Sequence[float] | torch.Tensor,
    D: Sequence[float] | torch.Tensor,
    L: Sequence[float] | torch.Tensor,
    run: Sequence[int],
    *,
    n_boot: int = 100,
    seed: int = 0,
    steps: int = 1500,
) -> list[ScalingFit]:
    """Refit L(N, D) on `n_boot` resamples of whole runs; one ScalingFit per resample.

    run: one id per point; the points of one run (the budgets read along one training
    run) share it, because they are not independent: a resample draws runs, never
    single points. Runs are drawn with replacement *within each model size* (the N of
    the run), as many as that size has, so every resample keeps every size: dropping a
    size would change the range of N the fit sees, which is a different question from
    how noisy the runs are. Percentiles of the fits' parameters are then bootstrap
    intervals. Needs at least 2 runs of some size, else every resample is the data.
    """
    N, D, L = _as_positive(N, "N"), _as_positive(D, "D"), _as_positive(L, "L")
    run_ids = [int(r) for r in run]
    if not len(N) == len(D) == len(L) == len(run_ids):
        raise ValueError(f"N, D, L and run must have one entry per point; got lengths {len(N)}, {len(D)}, {len(L)}, {len(run_ids)}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive int, got {n_boot!r}")
    points: dict[int, list[int]] = {}
    for i, r in enumerate(run_ids):
        points.setdefault(r, []).append(i)
    by_size: dict[float, list[int]] = {}
    for r, idx in points.items():
        sizes = {N[i].item() for i in idx}
        if len(sizes) != 1:
            raise ValueError(f"run {r} has points with different N {sorted(sizes)}: one run trains one model size")
        by_size.setdefault(sizes.pop(), []).append(r)
    if all(len(rs) < 2 for rs in by_size.values()):
        raise ValueError("every model size has a single run: resampling runs within a size changes nothing; run more seeds")
    g = torch.Generator().manual_seed(seed)
    fits = []
    for _ in range(n_boot):
        chosen = [rs[j] for rs in by_size.values() for j in torch.randint(len(rs), (len(rs),), generator=g).tolist()]
        idx = [i for r in chosen for i in points[r]]
        fits.append(fit_scaling_law(N[idx], D[idx], L[idx], steps=steps))
    return fits

