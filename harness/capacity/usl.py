"""The Universal Scalability Law, fitted to measured (load, throughput) points without scipy.

    X(N) = λ·N / (1 + σ·(N − 1) + κ·N·(N − 1))

λ is the throughput of one unit of load with no contention, σ the contention (the serial fraction:
throughput levels off towards λ/σ) and κ the coherency cost (throughput peaks at N* = √((1 − σ)/κ),
then falls). All three are ≥ 0.

How the fit works (least squares on X, the measured throughput):

1. *Variable projection*: for fixed (σ, κ) the model is linear in λ, so the best λ is closed-form,
   λ = Σ X·g / Σ g² with g = N / (1 + σ(N−1) + κN(N−1)). That leaves a 2-D problem.
2. *Grid*: σ ∈ {0} ∪ 10^[-5 … 0], κ ∈ {0} ∪ 10^[-7 … 4] / N_max² (κ is scaled by the largest load so
   the grid spans the same shapes whatever the unit of N). The best cell is the starting point; a
   grid cannot fall into a local minimum of a bad initial guess.
3. *Projected Levenberg–Marquardt* on (λ, σ, κ) from there, with the analytic Jacobian, Marquardt's
   diagonal scaling (parameters of very different sizes) and the bounds kept by fixing a parameter at 0
   while the gradient pushes it below 0.

Quality: R² = 1 − SS_res / SS_tot, the RMSE, and the degrees of freedom (points − 3): with three
points any three-parameter curve fits exactly, so R² says nothing; the report says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

METHOD = ("least squares on throughput: variable projection (closed-form λ) over a log grid of σ and κ, "
          "then projected Levenberg–Marquardt on λ, σ, κ ≥ 0")


class UslError(ValueError):
    """The points cannot be fitted (too few, or not positive)."""


def usl(n: float, lam: float, sigma: float, kappa: float) -> float:
    return lam * n / (1 + sigma * (n - 1) + kappa * n * (n - 1))


@dataclass(frozen=True)
class UslFit:
    lam: float
    sigma: float
    kappa: float
    r2: float | None  # None when every throughput is the same (nothing to explain)
    rmse: float
    points: int
    loads: tuple[float, ...]
    throughputs: tuple[float, ...]

    @property
    def dof(self) -> int:
        return self.points - 3

    def predict(self, n: float) -> float:
        return usl(n, self.lam, self.sigma, self.kappa)

    @property
    def peak_load(self) -> float | None:
        """N* = √((1 − σ)/κ): where throughput peaks; None without coherency cost (no peak) or σ ≥ 1."""
        if self.kappa <= 0 or self.sigma >= 1:
            return None
        return math.sqrt((1 - self.sigma) / self.kappa)

    @property
    def peak_throughput(self) -> float | None:
        peak = self.peak_load
        return None if peak is None else self.predict(peak)

    @property
    def asymptote(self) -> float | None:
        """λ/σ: the ceiling throughput approaches when κ = 0 and σ > 0 (no peak, a plateau)."""
        if self.kappa == 0 and self.sigma > 0:
            return self.lam / self.sigma
        return None


def fit_usl(loads: Sequence[float], throughputs: Sequence[float]) -> UslFit:
    if len(loads) != len(throughputs):
        raise UslError("loads and throughputs differ in length")
    points = [(float(n), float(x)) for n, x in zip(loads, throughputs, strict=True)]
    if any(not (math.isfinite(n) and math.isfinite(x)) for n, x in points):
        raise UslError("every load and throughput must be a finite number")
    if any(n <= 0 for n, _ in points):
        raise UslError("every load must be more than 0")
    if any(x < 0 for _, x in points):
        raise UslError("no throughput may be negative")
    if len({n for n, _ in points}) < 3:
        raise UslError(f"needs at least 3 different loads, got {len({n for n, _ in points})}")
    if not any(x > 0 for _, x in points):
        raise UslError("every throughput is 0")
    ns = [n for n, _ in points]
    xs = [x for _, x in points]
    sigma, kappa = _grid_start(ns, xs)
    lam = _best_lambda(ns, xs, sigma, kappa)
    lam, sigma, kappa = _levenberg_marquardt(ns, xs, [lam, sigma, kappa])
    ssr = _ssr(ns, xs, lam, sigma, kappa)
    mean = sum(xs) / len(xs)
    sst = sum((x - mean) ** 2 for x in xs)
    r2 = None if sst == 0 else 1 - ssr / sst
    return UslFit(lam=lam, sigma=sigma, kappa=kappa, r2=r2, rmse=math.sqrt(ssr / len(xs)), points=len(xs),
                  loads=tuple(ns), throughputs=tuple(xs))


# -- the fit ----------------------------------------------------------------------------------------------


def _shape(ns, sigma, kappa) -> list[float]:
    return [n / (1 + sigma * (n - 1) + kappa * n * (n - 1)) for n in ns]


def _best_lambda(ns, xs, sigma, kappa) -> float:
    g = _shape(ns, sigma, kappa)
    denominator = sum(v * v for v in g)
    return max(0.0, sum(x * v for x, v in zip(xs, g, strict=True)) / denominator) if denominator else 0.0


def _ssr(ns, xs, lam, sigma, kappa) -> float:
    return sum((x - usl(n, lam, sigma, kappa)) ** 2 for n, x in zip(ns, xs, strict=True))


def _grid_start(ns, xs) -> tuple[float, float]:
    scale = max(ns) ** 2
    sigmas = [0.0] + [10 ** (-5 + i * 0.2) for i in range(26)]  # 1e-5 … 1
    kappas = [0.0] + [10 ** (-7 + i * 0.25) / scale for i in range(45)]  # 1e-7 … 1e4, over N_max²
    best = (math.inf, 0.0, 0.0)
    for sigma in sigmas:
        for kappa in kappas:
            lam = _best_lambda(ns, xs, sigma, kappa)
            ssr = _ssr(ns, xs, lam, sigma, kappa)
            if ssr < best[0]:
                best = (ssr, sigma, kappa)
    return best[1], best[2]


def _jacobian_row(n, lam, sigma, kappa) -> tuple[float, list[float]]:
    d = 1 + sigma * (n - 1) + kappa * n * (n - 1)
    f = lam * n / d
    return f, [n / d, -lam * n * (n - 1) / d ** 2, -lam * n * n * (n - 1) / d ** 2]


def _levenberg_marquardt(ns, xs, p: list[float], iterations: int = 500) -> tuple[float, float, float]:
    mu = 1e-3
    ssr = _ssr(ns, xs, *p)
    for _ in range(iterations):
        jtj = [[0.0] * 3 for _ in range(3)]
        jtr = [0.0] * 3
        for n, x in zip(ns, xs, strict=True):
            f, row = _jacobian_row(n, *p)
            r = x - f
            for a in range(3):
                jtr[a] += row[a] * r
                for b in range(3):
                    jtj[a][b] += row[a] * row[b]
        # Bounds: a parameter at 0 whose descent direction points below 0 stays at 0 this iteration.
        free = [j for j in range(3) if not (p[j] <= 0 and jtr[j] <= 0) and jtj[j][j] > 0]
        if not free:
            break
        improved = False
        while mu < 1e16:
            # Solved in scaled variables (unit diagonal): λ, σ and κ differ by many orders of magnitude.
            scale = {a: math.sqrt(jtj[a][a]) for a in free}
            matrix = [[jtj[a][b] / (scale[a] * scale[b]) + (mu if a == b else 0.0) for b in free] for a in free]
            step = _solve(matrix, [jtr[a] / scale[a] for a in free])
            if step is None:
                mu *= 10
                continue
            trial = list(p)
            for j, delta in zip(free, step, strict=True):
                trial[j] = max(0.0, p[j] + delta / scale[j])
            trial_ssr = _ssr(ns, xs, *trial)
            if trial_ssr < ssr:
                converged = (ssr - trial_ssr <= 1e-15 * ssr
                             or all(abs(trial[j] - p[j]) <= 1e-13 * max(abs(p[j]), 1e-300) for j in free))
                p, ssr, mu, improved = trial, trial_ssr, max(mu / 3, 1e-12), True
                break
            mu *= 4
        if not improved or converged:
            break
    return p[0], p[1], p[2]


def _solve(matrix: list[list[float]], rhs: list[float]) -> list[float] | None:
    """Gaussian elimination with partial pivoting (the systems are at most 3 × 3)."""
    size = len(rhs)
    a = [row[:] + [value] for row, value in zip(matrix, rhs, strict=True)]
    for col in range(size):
        pivot = max(range(col, size), key=lambda r: abs(a[r][col]))
        if abs(a[pivot][col]) < 1e-300:
            return None
        a[col], a[pivot] = a[pivot], a[col]
        for r in range(col + 1, size):
            factor = a[r][col] / a[col][col]
            for c in range(col, size + 1):
                a[r][c] -= factor * a[col][c]
    out = [0.0] * size
    for r in range(size - 1, -1, -1):
        out[r] = (a[r][size] - sum(a[r][c] * out[c] for c in range(r + 1, size))) / a[r][r]
    return out if all(math.isfinite(v) for v in out) else None
