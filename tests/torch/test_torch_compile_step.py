"""Each torch API inside a compiled train step, and no host read of a tensor in the step.

A train step here is: forward and loss with the penalties (`l21_regularization`,
`hoyer_regularization`, `AdaptiveL21.penalty`) compiled with `fullgraph=True`, backward (the
compiled backward graph), `optimizer.step()`, then the post-step pieces (`ProximalL21` with
both thresholds, `GroupBudget`, the prox whose `λ` an `AdaptiveL21` sets) compiled with
`fullgraph=True`. `optimizer.step()` itself stays outside: torch.optim breaks the graph on
purpose inside it (`torch/optim/optimizer.py`, `_use_grad`). `fullgraph=True` fails on any
graph break whatever the backend, so the cheap `aot_eager` backend checks it; a `float(...)`
of a tensor learning rate or of Adam's step count in the step is such a break. The
`AdaptiveL21` controller steps outside, on the host, once per `every` steps.
"""

from __future__ import annotations

import pytest
import torch
from sparsehead.adapters.torch import (
    AdaptiveL21,
    GroupBudget,
    ProximalL21,
    hoyer_regularization,
    l21_regularization,
)
from torch import nn
from torch._dynamo.backends.registry import lookup_backend

from tests.tolerances import assert_close

from .host_reads import host_reads

LR, STEPS, EVERY = 0.05, 4, 2

OPTIMIZERS = {
    "adam": lambda p: torch.optim.Adam(p, lr=LR),
    "adam-foreach": lambda p: torch.optim.Adam(p, lr=LR, foreach=True),
    "adam-tensor-lr": lambda p: torch.optim.Adam(p, lr=torch.tensor(LR)),
    "adam-fused-tensor-lr": lambda p: torch.optim.Adam(p, lr=torch.tensor(LR), fused=True),
    "adamw-fused": lambda p: torch.optim.AdamW(p, lr=LR, fused=True, weight_decay=0.1),
    "adamw-capturable": lambda p: torch.optim.AdamW(p, lr=LR, capturable=True),
    "sgd": lambda p: torch.optim.SGD(p, lr=LR, momentum=0.9),
}
CPU_UNSUPPORTED = {"adamw-capturable": "capturable Adam/AdamW needs CUDA (torch refuses CPU)"}


@pytest.fixture(autouse=True)
def fresh_dynamo():
    """Each case compiles from scratch: dynamo remembers the sources it saw change between
    cases (a float `lr` after a tensor one becomes a dynamic float, an `item` of a host
    scalar in the graph), which would make a case depend on the ones before it."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


class CountingBackend:
    """`aot_eager`, counting the graphs it is given (a recompilation is a new graph) and the
    reads of a tensor value in them: dynamo traces `float(t)` / `t.item()` into the graph as
    `item` (no graph break: torch turns such scalars back into tensors where it can), which
    is a read on the host wherever it stays."""

    def __init__(self) -> None:
        self.graphs = 0
        self.reads: list[str] = []
        self.inner = lookup_backend("aot_eager")

    def __call__(self, gm, example_inputs):
        self.graphs += 1
        self.reads += [
            str(node)
            for node in gm.graph.nodes
            if node.target in ("item", "tolist", torch.ops.aten._local_scalar_dense.default)
        ]
        return self.inner(gm, example_inputs)


class Run:
    """A small model, an optimizer and every SparseHead piece on it."""

    def __init__(self, optimizer: str, device: str = "cpu") -> None:
        torch.manual_seed(0)
        self.model = nn.Sequential(
            nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 5)
        ).to(device)
        g = torch.Generator().manual_seed(1)
        self.x = torch.randn(16, 6, generator=g).to(device)
        self.y = torch.randn(16, 5, generator=g).to(device)
        opt = OPTIMIZERS[optimizer](self.model.parameters())
        if device != "cpu":  # the same optimizer, its lr (if a tensor) on the device
            for group in opt.param_groups:
                if isinstance(group["lr"], torch.Tensor):
                    group["lr"] = group["lr"].to(device)
        self.opt = opt
        m = self.model
        self.proxes = [ProximalL21(opt, 0.05, m[2], precondition="lr")]
        if isinstance(opt, torch.optim.Adam | torch.optim.AdamW):
            self.proxes.append(ProximalL21(opt, 0.02, m[4], precondition="adam"))
        else:
            self.proxes.append(ProximalL21(opt, 0.02, m[4], precondition="lr"))
        # λ of the last prox and of the penalty on m[0] driven by two controllers, the two rules
        self.adaptive = [
            AdaptiveL21(0.3, prox=self.proxes[-1], l21=0.02, every=EVERY, controller="pi"),
            AdaptiveL21(0.3, m[0], l21=1e-2, every=EVERY, measure="frac_below_1pct"),
        ]
        self.budget = GroupBudget(opt, 3, m[0], begin_step=1, end_step=3, every=EVERY)

    def loss(self) -> torch.Tensor:
        m = self.model
        mse = (m(self.x) - self.y).square().mean()
        return (
            mse
            + l21_regularization(m, 1e-2, "2")
            + hoyer_regularization(m, 1e-3, "4.weight")
            + self.adaptive[1].penalty()
        )

    def post_step(self) -> None:
        for prox in self.proxes:
            prox.step()
        self.budget.step()

    def train(self, compiled: bool, steps: int = STEPS, post_backend=None) -> CountingBackend:
        backend = CountingBackend()
        loss, post = self.loss, self.post_step
        if compiled:
            loss = torch.compile(loss, fullgraph=True, backend=backend)
            post = torch.compile(post, fullgraph=True, backend=post_backend or backend)
        self.graphs_after_first = None
        for _ in range(steps):
            self.opt.zero_grad()
            loss().backward()
            self.opt.step()
            post()
            for adaptive in self.adaptive:
                adaptive.step()  # the host-side controller, outside the compiled step
            if self.graphs_after_first is None:
                self.graphs_after_first = backend.graphs
        return backend


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_compiled_step_matches_eager_with_no_graph_break(optimizer):
    """Each piece compiles into one graph per function (`fullgraph=True`), `λ` changing at
    steps 2 and 4 recompiles nothing (it is a tensor filled in place), and the weights after
    4 steps equal the eager run to float32 precision."""
    if optimizer in CPU_UNSUPPORTED:
        pytest.skip(CPU_UNSUPPORTED[optimizer])
    eager, compiled = Run(optimizer), Run(optimizer)
    eager.train(compiled=False)
    backend = compiled.train(compiled=True)
    assert backend.graphs == compiled.graphs_after_first == 2  # the loss and the post step
    assert backend.reads == []
    for e, c in zip(eager.adaptive, compiled.adaptive, strict=True):
        assert [h[0] for h in c.history] == [2, 4]
        assert len({h[1] for h in c.history}) == 2  # λ did change between the updates
        assert_close([h[1] for h in c.history], [h[1] for h in e.history], "float32")
    assert compiled.budget.nonzero_groups() == [3]  # the budget did project
    for pe, pc in zip(eager.model.parameters(), compiled.model.parameters(), strict=True):
        ref = pe.detach()
        assert_close(pc.detach(), ref, "float32", atol_scale=float(ref.abs().max()))


# the graph breaks and skipped frames of torch itself in a compiled
# `zero_grad(); loss.backward(); step()` (a data-dependent branch would be none of these)
TORCH_BREAKS = (
    "`Optimizer.zero_grad` should not be traced",
    "Called `torch._dynamo.graph_break()`",  # torch.optim's _use_grad, on purpose
    "don't trace into fused optimizer",
    "Attempt to trace generator",  # frames of the skipped zero_grad, run eagerly
)


def test_whole_step_with_attached_hooks_breaks_only_inside_torch_optim():
    """The whole step compiled as one function, the prox and the budget run from the
    optimizer's post-step hooks (`attach()`): dynamo breaks the graph only where torch.optim
    asks it to, and the weights equal the eager run."""
    from torch._dynamo.utils import counters

    runs = Run("adamw-fused"), Run("adamw-fused")
    for run in runs:
        for hook in (*run.proxes, run.budget):
            hook.attach()

    def step(run):
        run.opt.zero_grad()
        run.loss().backward()
        run.opt.step()

    counters.clear()
    backend = CountingBackend()
    compiled = torch.compile(step, backend=backend)
    for _ in range(STEPS):
        step(runs[0])
        compiled(runs[1])
    reasons = [*counters["graph_break"], *counters["unimplemented"]]
    assert reasons and all(any(b in r for b in TORCH_BREAKS) for r in reasons), reasons
    assert backend.reads == []
    assert runs[1].budget.nonzero_groups() == [3]
    for pe, pc in zip(runs[0].model.parameters(), runs[1].model.parameters(), strict=True):
        ref = pe.detach()
        assert_close(pc.detach(), ref, "float32", atol_scale=float(ref.abs().max()))


@pytest.mark.slow
def test_inductor_compiles_the_step_for_real():
    """The one inductor compile (C++ on CPU) of the file: the post step above as generated
    code (the budget's sorts, the prox thresholds from a tensor lr and Adam's step)."""
    eager, compiled = Run("adam-fused-tensor-lr"), Run("adam-fused-tensor-lr")
    eager.train(compiled=False)
    compiled.train(compiled=True, post_backend="inductor")
    assert compiled.budget.nonzero_groups() == [3]
    for pe, pc in zip(eager.model.parameters(), compiled.model.parameters(), strict=True):
        ref = pe.detach()
        assert_close(pc.detach(), ref, "float32", atol_scale=float(ref.abs().max()))


@pytest.mark.parametrize("optimizer", ["adam-tensor-lr", "adamw-fused", "sgd"])
def test_step_reads_nothing_on_the_host(optimizer):
    """Eager, on CPU: sparsehead's code reads no tensor value on the host in the loss or the
    post step; the controllers read their weights once per `every` steps, each weight once
    (`.to("cpu")`, then the host copy as NumPy), and nothing on the other steps."""
    run = Run(optimizer)
    for t in range(1, 2 * EVERY + 1):
        run.opt.zero_grad()
        with host_reads() as reads:
            loss = run.loss()
        assert reads == [], f"step {t}, loss"
        loss.backward()
        run.opt.step()  # torch.optim's own reads (plain Adam's step count) do not count
        with host_reads() as reads:
            run.post_step()
        assert reads == [], f"step {t}, post step"
        with host_reads() as reads:
            for adaptive in run.adaptive:
                adaptive.step()
        if t % EVERY:
            assert reads == [], f"step {t}, controllers"
        else:  # one copy of each of the two weights, then NumPy on the host copy
            assert sorted(r.split()[0] for r in reads) == ["numpy", "numpy", "to", "to"]
            assert all("_adaptive.py" in r for r in reads)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("optimizer", ["adam-fused-tensor-lr", "adamw-capturable", "sgd"])
def test_cuda_step_does_not_synchronize(optimizer):
    """On a GPU, under `torch.cuda.set_sync_debug_mode("error")`: any step that makes the host
    wait for the device raises. The controllers' update steps (one host read each) excepted."""
    run = Run(optimizer, device="cuda")
    run.train(compiled=False, steps=1)  # the optimizer state is created
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for t in range(2, 2 * EVERY + 1):  # ends on a due step of the budget
            run.opt.zero_grad()
            run.loss().backward()
            run.opt.step()
            run.post_step()
            if t % EVERY:
                for adaptive in run.adaptive:
                    adaptive.step()
            else:
                torch.cuda.set_sync_debug_mode("default")
                for adaptive in run.adaptive:
                    adaptive.step()  # the update: one read per weight
                torch.cuda.set_sync_debug_mode("error")
    finally:
        torch.cuda.set_sync_debug_mode(previous)
    torch.cuda.synchronize()
    assert run.budget.nonzero_groups() == [3]
