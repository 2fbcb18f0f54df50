"""λ from a sparsity target: the dual-ascent controller every adapter's `AdaptiveL21` runs.

"The head's sparsity measure `s(W)` reaches `s*`" is treated as a constraint and the L2,1
strength `λ` as its Lagrange multiplier (Gallego-Posada et al., "Controlled Sparsity via
Constrained Optimization", NeurIPS 2022). Every `every` optimizer steps `λ` takes the
multiplicative dual step, projected onto `[min_l21, max_l21]`,

    λ <- clip(λ * exp(sign * η * (s - s*)), min_l21, max_l21),

with `sign = MEASURES[measure]`: `+1` for a measure where lower is sparser (λ grows while the
weights are denser than the target), `-1` where higher is sparser. It is projected gradient
ascent on `log λ`: `λ` stays positive, one step changes it by at most a factor `exp(η)`, and it
crosses decades in a few updates from a poor `λ0`.

`DampedPI` is the damped proportional-integral rule (νPI: Sohrabi et al., "On PI controllers
for updating Lagrange multipliers in constrained optimization", ICML 2024; cooper's `nuPI`),
in `log λ`, on the exponentially averaged measure `s̄` (`smooth_measure`):

    s̄_t = β s̄_{t-1} + (1 - β) s_t               (s̄_0 = s_0)
    e_t = sign * (s̄_t - s*)
    ξ_t = ν ξ_{t-1} + (1 - ν) e_t                (ξ_{-1} = e_0: the first step is the dual step)
    log λ <- clip(log λ + η (e_t + K_P (ξ_t - ξ_{t-1})), log min_l21, log max_l21)

(`K_I = 1`: `η` is the integral gain). `K_P = 0`, or `ν = 0` and `K_P = 0`, is `DualAscent`
on `s̄`; with `β = 0` too it is `DualAscent` itself. The state `(ξ, s̄)` is `state_dict()`.
Clipping `log λ` itself is the anti-windup: `log λ` is the integrator (velocity form).
"""

from __future__ import annotations

import math

import numpy as np

from ._validation import check_choice, check_int, check_real
from .groups import sparsity_summary
from .schedule import is_due

__all__ = [
    "CONTROLLERS",
    "MEASURES",
    "DampedPI",
    "DualAscent",
    "measure_fraction",
    "pi_step",
    "smooth_measure",
]

# measure -> sign: +1 if lower is sparser, -1 if higher is sparser. Each is a fraction of the
# groups in [0, 1] (`measure_fraction`), unchanged when the weight is scaled.
MEASURES: dict[str, int] = {
    "groups_95_energy": +1,
    "frac_below_1pct": -1,
    "frac_below_0p1pct": -1,
    "zero_groups": -1,
}

#: `DampedPI`'s gains when not given. Provisional: not yet chosen on a validation run
#: (reference/experiments/controller.py; docs/beyond.md says what was run).
PI_DEFAULTS: dict[str, float] = {"kp": 1.0, "nu": 0.5, "smoothing": 0.5}


def measure_fraction(w: np.ndarray, group_axis: int, measure: str) -> float:
    """`measure` of `w` as a fraction of its `G` groups, in `[0, 1]`.

    `groups_95_energy / G` (the fewest groups holding 95 % of `||W||_F^2`), `frac_below_1pct`,
    `frac_below_0p1pct` (groups below 1 % / 0.1 % of the largest norm), `zero_groups / G`
    (groups exactly 0); from `sparsehead.sparsity_summary`. A weight holding NaN or inf is
    refused (`ValueError`): a measure of it would mean nothing.
    """
    check_choice(measure, "measure", MEASURES)
    summary = sparsity_summary(w, group_axis)
    value = summary[measure]
    if measure in ("groups_95_energy", "zero_groups"):
        return value / summary["groups"]
    return float(value)


class DualAscent:
    """The rule that drives a measure towards `target` by moving `λ` (see the module).

    Args:
        target: `s*`, a fraction in the open interval `(0, 1)`.
        measure: one of `MEASURES` (`measure_fraction`).
        dual_lr: `η > 0`.
        every: update after optimizer steps `every, 2 * every, ...` (`>= 1`).
        min_l21: the floor `λ_min > 0`.
        max_l21: the cap `λ_max >= min_l21`.

    Attributes: the arguments, and `sign` (`MEASURES[measure]`).
    """

    def __init__(
        self,
        target: float,
        *,
        measure: str = "groups_95_energy",
        dual_lr: float = 1.0,
        every: int = 50,
        min_l21: float = 1e-12,
        max_l21: float = 1000.0,
    ) -> None:
        self.target = check_real(target, "target", low=0, high=1, low_open=True, high_open=True)
        self.measure = check_choice(measure, "measure", MEASURES)
        self.sign = MEASURES[self.measure]
        self.dual_lr = check_real(dual_lr, "dual_lr", low=0, low_open=True)
        self.every = check_int(every, "every", low=1)
        self.min_l21 = check_real(min_l21, "min_l21", low=0, low_open=True)
        self.max_l21 = check_real(max_l21, "max_l21", low=self.min_l21)

    def __repr__(self) -> str:
        return (
            f"DualAscent({self.target}, measure={self.measure!r}, dual_lr={self.dual_lr}, "
            f"every={self.every}, min_l21={self.min_l21}, max_l21={self.max_l21})"
        )

    def due(self, step: int) -> bool:
        """Whether to update after optimizer step `step` (`>= 1`): `is_due(step, every)`."""
        return is_due(step, self.every)

    def clip(self, l21: float) -> float:
        """`l21` projected onto `[min_l21, max_l21]`."""
        return self._clip(check_real(l21, "l21", low=0, low_open=True))

    def _clip(self, l21: float) -> float:
        return min(self.max_l21, max(self.min_l21, l21))

    def update(self, l21: float, s: float) -> float:
        """One dual step: `clip(l21 * exp(sign * dual_lr * (s - target)))`.

        `l21 > 0` is the current `λ`, `s` the measure now, a fraction in `[0, 1]`.
        """
        l21 = check_real(l21, "l21", low=0, low_open=True)
        s = check_real(s, "s", low=0, high=1)
        # exp overflows above ~709.78 (OverflowError); the clip gives max_l21 either way, and
        # a product that overflows to inf or underflows to 0 is clipped too.
        factor = math.exp(min(self.sign * self.dual_lr * (s - self.target), 709.0))
        return self._clip(l21 * factor)

    def at_cap(self, l21: float) -> bool:
        """Whether `l21` sits at the cap `max_l21` (the measure did not respond to `λ`)."""
        return check_real(l21, "l21", low=0, low_open=True) >= self.max_l21

    def state_dict(self) -> dict:
        """The rule's state between updates: none (`λ` itself is the adapter's)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore `state_dict()` (nothing to restore; a `DampedPI` state is refused)."""
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict; got {type(state).__name__}")
        if state:
            raise ValueError(f"state of a DualAscent must be empty; got keys {sorted(state)}")


def smooth_measure(previous: float | None, s: float, smoothing: float) -> float:
    """The exponentially averaged measure `s̄_t = β s̄_{t-1} + (1 - β) s_t`, `s̄_0 = s_0`.

    `previous` is `s̄_{t-1}` (`None` before the first update), `s` the measure read now,
    `smoothing` is `β` in `[0, 1)`. Why this smoothing and not a soft count of the group norms:
    it keeps the measure's meaning (the target stays "a fraction `s*` of the groups holds 95 %
    of the energy", for every measure of `MEASURES`, the exact-zero count included), and it
    averages out what no function of one snapshot of `W` can: on the SimCLR harness the
    measure swung between 0.05 and 0.70 at epoch ends while λ stayed within a factor 2
    (docs/beyond.md), the head switching between a spread and a concentrated state. Its cost
    is a lag of about `β / (1 - β)` updates, which the proportional term's lead offsets.
    """
    if previous is None:
        return s
    return smoothing * previous + (1.0 - smoothing) * s


def pi_step(
    log_l21: float, e: float, xi_prev: float, *, dual_lr: float, kp: float, nu: float
) -> tuple[float, float]:
    """One νPI step on `log λ`, before the clip: `(log λ + η (e + K_P (ξ - ξ_prev)), ξ)` with
    `ξ = ν ξ_prev + (1 - ν) e` (Sohrabi et al., ICML 2024, Eq. 7 in velocity form, `K_I = 1`)."""
    xi = nu * xi_prev + (1.0 - nu) * e
    return log_l21 + dual_lr * (e + kp * (xi - xi_prev)), xi


class DampedPI(DualAscent):
    """The damped PI rule in `log λ` on the averaged measure (νPI; see the module).

    Args: those of `DualAscent`, and
        kp: the proportional gain `K_P >= 0` (relative to `K_I = 1`; `0` is the dual step).
        nu: the damping `ν` in `[0, 1)` of the error's average `ξ`.
        smoothing: `β` in `[0, 1)` of the measure's average `s̄` (`smooth_measure`; `0`: none).

    State (`state_dict()`): `xi` (`ξ` after the last update) and `smoothed` (`s̄`), both `None`
    before the first update. `update` is not pure: it advances the state; `λ` stays the
    caller's (it is passed in and returned), as for `DualAscent`.
    """

    def __init__(
        self,
        target: float,
        *,
        measure: str = "groups_95_energy",
        dual_lr: float = 1.0,
        kp: float = PI_DEFAULTS["kp"],
        nu: float = PI_DEFAULTS["nu"],
        smoothing: float = PI_DEFAULTS["smoothing"],
        every: int = 50,
        min_l21: float = 1e-12,
        max_l21: float = 1000.0,
    ) -> None:
        super().__init__(
            target,
            measure=measure,
            dual_lr=dual_lr,
            every=every,
            min_l21=min_l21,
            max_l21=max_l21,
        )
        self.kp = check_real(kp, "kp", low=0)
        self.nu = check_real(nu, "nu", low=0, high=1, high_open=True)
        self.smoothing = check_real(smoothing, "smoothing", low=0, high=1, high_open=True)
        self.xi: float | None = None
        self.smoothed: float | None = None

    def __repr__(self) -> str:
        return (
            f"DampedPI({self.target}, measure={self.measure!r}, dual_lr={self.dual_lr}, "
            f"kp={self.kp}, nu={self.nu}, smoothing={self.smoothing}, every={self.every}, "
            f"min_l21={self.min_l21}, max_l21={self.max_l21})"
        )

    def update(self, l21: float, s: float) -> float:
        """One νPI step from `λ = l21` and the measure `s` read now; returns the new `λ`."""
        l21 = check_real(l21, "l21", low=0, low_open=True)
        s = check_real(s, "s", low=0, high=1)
        smoothed = smooth_measure(self.smoothed, s, self.smoothing)
        e = self.sign * (smoothed - self.target)
        xi_prev = e if self.xi is None else self.xi
        log_l21, xi = pi_step(
            math.log(l21), e, xi_prev, dual_lr=self.dual_lr, kp=self.kp, nu=self.nu
        )
        self.smoothed, self.xi = smoothed, xi
        return self._clip(math.exp(min(log_l21, 709.0)))  # exp(<-745) is 0: the floor

    def state_dict(self) -> dict:
        """`{"xi": ξ, "smoothed": s̄}` (floats, or `None` before the first update)."""
        return {"xi": self.xi, "smoothed": self.smoothed}

    def load_state_dict(self, state: dict) -> None:
        """Restore `state_dict()`; `{}` (a `DualAscent`'s, or an old checkpoint's) resets it."""
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict; got {type(state).__name__}")
        unknown = set(state) - {"xi", "smoothed"}
        if unknown:
            raise ValueError(f"state has unknown keys {sorted(unknown)}")
        xi, smoothed = state.get("xi"), state.get("smoothed")
        self.xi = None if xi is None else check_real(xi, "xi", low=-1, high=1)
        self.smoothed = (
            None if smoothed is None else check_real(smoothed, "smoothed", low=0, high=1)
        )


#: The rules `AdaptiveL21(controller=...)` selects.
CONTROLLERS: dict[str, type[DualAscent]] = {"dual": DualAscent, "pi": DampedPI}


def adaptive_controller(
    prox_type,
    prox,
    targets,
    target,
    measure,
    dual_lr,
    every,
    min_l21,
    max_l21,
    *,
    controller: str = "dual",
    kp: float | None = None,
    nu: float | None = None,
    smoothing: float | None = None,
) -> DualAscent:
    """The checks every framework's `AdaptiveL21` shares, then its rule: a `DualAscent` for
    `controller="dual"`, a `DampedPI` for `"pi"` (the other arguments are the rule's, all given:
    the adapters pass their own, documented, values).

    `prox` is `None` or a `prox_type` (the framework's `ProximalL21`); `targets=None` needs a
    `prox`, whose weights then are the targets. Both mistakes are a `TypeError`, as a missing
    or wrongly typed argument is. `kp`, `nu`, `smoothing` are `DampedPI`'s (`None`: its
    default); given with `controller="dual"` they are a `ValueError`, not silently ignored.
    """
    if prox is not None and not isinstance(prox, prox_type):
        raise TypeError(f"prox must be a {prox_type.__name__}; got {type(prox).__name__}")
    if targets is None and prox is None:
        raise TypeError("targets must be given when prox is None (AdaptiveL21 takes its weights)")
    check_choice(controller, "controller", CONTROLLERS)
    common = dict(measure=measure, dual_lr=dual_lr, every=every, min_l21=min_l21, max_l21=max_l21)
    gains = {"kp": kp, "nu": nu, "smoothing": smoothing}
    given = {name: value for name, value in gains.items() if value is not None}
    if controller == "dual":
        if given:
            raise ValueError(
                f"{', '.join(given)} apply to controller='pi' only; got controller='dual'"
            )
        return DualAscent(target, **common)
    return DampedPI(target, **common, **given)
