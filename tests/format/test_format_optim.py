"""torch.optim optimizers and lr schedulers: stored with their model, training continues."""

from __future__ import annotations

from typing import Any, Callable

import pytest
import torch
from torch import nn

import safeart
from safeart import EncodeError, Policy

POLICY = Policy(allow=["torch.optim.adam.Adam", "torch.optim.adamw.AdamW", "torch.optim.sgd.SGD",
                       "torch.optim.lr_scheduler.StepLR", "torch.optim.lr_scheduler.OneCycleLR",
                       "torch.optim.lr_scheduler.LambdaLR"])
X = torch.linspace(-1, 1, 12).reshape(4, 3)


def step(model: nn.Module, opt: Any, sched: Any) -> None:
    opt.zero_grad()
    model(X).pow(2).sum().backward()
    opt.step()
    sched.step()


CASES: list[tuple[Callable, Callable]] = [
    (lambda p: torch.optim.Adam(p, lr=0.01), lambda o: torch.optim.lr_scheduler.StepLR(o, 2)),
    (lambda p: torch.optim.AdamW(p, lr=0.01, amsgrad=True),
     lambda o: torch.optim.lr_scheduler.StepLR(o, 1, gamma=0.5)),
    (lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
     lambda o: torch.optim.lr_scheduler.OneCycleLR(o, 1.0, total_steps=10)),
]


@pytest.mark.parametrize("make_opt, make_sched", CASES, ids=["adam", "adamw", "sgd_onecycle"])
def test_optimizer_and_scheduler_continue_training_identically(make_opt: Callable,
                                                               make_sched: Callable) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    opt = make_opt(model.parameters())
    sched = make_sched(opt)
    for _ in range(2):
        step(model, opt, sched)
    back = safeart.loads(safeart.dumps({"model": model, "opt": opt, "sched": sched}), policy=POLICY)
    model2, opt2, sched2 = back["model"], back["opt"], back["sched"]
    assert type(opt2) is type(opt) and opt2.param_groups[0]["params"][0] is model2[0].weight
    assert sched2.optimizer is opt2 and list(opt2.state) == list(model2.parameters())
    for _ in range(3):
        step(model, opt, sched)
        step(model2, opt2, sched2)
    for a, b in zip(model.parameters(), model2.parameters()):
        assert torch.equal(a, b)
    assert sched2.get_last_lr() == sched.get_last_lr()


def test_state_dicts_store_as_plain_data() -> None:
    model = nn.Linear(3, 1)
    opt = torch.optim.Adam(model.parameters())
    sched = torch.optim.lr_scheduler.StepLR(opt, 2)
    step(model, opt, sched)
    states = safeart.loads(safeart.dumps({"opt": opt.state_dict(), "sched": sched.state_dict()}),
                           policy=Policy(include_defaults=False))  # no class at all
    fresh = torch.optim.Adam(nn.Linear(3, 1).parameters())
    fresh.load_state_dict(states["opt"])
    assert torch.equal(fresh.state_dict()["state"][0]["exp_avg"], opt.state[model.weight]["exp_avg"])
    assert states["sched"] == sched.state_dict()


def test_lambda_lr_keeps_a_lambda_and_says_to_store_its_state_dict() -> None:
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda epoch: 0.9 ** epoch)
    with pytest.raises(EncodeError, match="lambda") as info:
        safeart.dumps({"sched": sched})
    assert info.value.path == "['sched'].lr_lambdas[0]"
    assert "state_dict()" in info.value.hint and "load_state_dict" in info.value.hint
    assert safeart.loads(safeart.dumps(sched.state_dict()))["base_lrs"] == [0.1]
    sched = torch.optim.lr_scheduler.LambdaLR(opt, decay)  # a module-level function: a reference
    back = safeart.loads(safeart.dumps(sched), policy=POLICY.extend(
        [safeart.Rule("test_format_optim.decay", "test schedule", kind="reference")]))
    assert back.lr_lambdas == [decay]


def decay(epoch: int) -> float:
    return 0.5 ** epoch
