"""Learning-rate schedule: warm-up, steps, cosine."""
import pytest
import torch

from workbench.config.schemas import DETECTION_DEFAULTS as DEFAULTS
from workbench.engine.solver import ErrorWarmup, build_optimizer, build_scheduler, lr_factor, refresh_lr

SOLVER = dict(DEFAULTS["solver"], lr=0.1, max_iter=100, steps=[50, 80], warmup_iters=10, warmup_factor=0.1)


def test_warmup_then_steps():
    assert lr_factor(0, SOLVER) == pytest.approx(0.1)
    assert lr_factor(5, SOLVER) == pytest.approx(0.55)
    assert lr_factor(10, SOLVER) == 1.0
    assert lr_factor(50, SOLVER) == pytest.approx(0.1)
    assert lr_factor(80, SOLVER) == pytest.approx(0.01)


def test_cosine_decays_to_zero():
    solver = dict(SOLVER, schedule="cosine", warmup_iters=0)
    assert lr_factor(0, solver) == 1.0 and lr_factor(50, solver) == pytest.approx(0.5)
    assert lr_factor(100, solver) == pytest.approx(0.0)


def test_bad_schedule_is_named():
    with pytest.raises(ValueError, match="schedule='linear'"):
        build_scheduler(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1), dict(SOLVER, schedule="linear"))


@pytest.mark.parametrize("weight_decay_bias,bias_decay", [(None, SOLVER["weight_decay"]), (0.0, 0.0), (1e-5, 1e-5)])
@pytest.mark.parametrize("weight_decay_norm,norm_decay", [(None, SOLVER["weight_decay"]), (0.0, 0.0)])
def test_weights_biases_and_norms_get_their_own_weight_decay(weight_decay_bias, bias_decay, weight_decay_norm,
                                                             norm_decay):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    optimizer = build_optimizer(model, dict(SOLVER, weight_decay_norm=weight_decay_norm,
                                            weight_decay_bias=weight_decay_bias))
    weights, biases, norms = optimizer.param_groups
    assert weights["params"] == [model[0].weight] and weights["weight_decay"] == SOLVER["weight_decay"]
    assert biases["params"] == [model[0].bias] and biases["weight_decay"] == bias_decay
    assert norms["params"] == [model[1].weight, model[1].bias] and norms["weight_decay"] == norm_decay


def test_constant_warmup_holds_the_factor_then_jumps():
    solver = dict(SOLVER, warmup_method="constant", warmup_iters=400, warmup_factor=0.1, steps=[])
    assert lr_factor(0, solver) == lr_factor(399, solver) == pytest.approx(0.1)
    assert lr_factor(400, solver) == 1.0
    with pytest.raises(ValueError, match="warmup_method='cosine'"):
        lr_factor(0, dict(solver, warmup_method="cosine"))


def test_error_warmup_holds_the_factor_until_the_training_error_is_below_the_threshold():
    warmup = ErrorWarmup(until_error=80, factor=0.1)
    assert warmup.lr_factor() == 0.1
    assert not warmup.update(20, {"train/top1": 15.0})  # 85% error
    assert not warmup.update(40, {"train/top1": 20.0})  # exactly 80%: not below
    assert warmup.update(60, {"train/top1": 25.0}) and warmup.ended_at == 60 and warmup.lr_factor() == 1.0
    assert not warmup.update(80, {"train/top1": 5.0}) and warmup.ended_at == 60  # it never comes back
    resumed = ErrorWarmup(until_error=80, factor=0.1)
    resumed.load_state_dict(warmup.state_dict())
    assert resumed.ended_at == 60 and resumed.lr_factor() == 1.0


def test_error_warmup_needs_the_training_accuracy():
    with pytest.raises(ValueError, match="solver.warmup_until_error needs the training accuracy 'train/top1'"):
        ErrorWarmup(until_error=80, factor=0.1).update(20, {"loss": 1.0})


def test_the_scheduler_follows_the_error_warmup_and_refreshes_at_once():
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    warmup = ErrorWarmup(until_error=80, factor=0.1)
    scheduler = build_scheduler(optimizer, dict(SOLVER, warmup_iters=0), warmup)
    for _ in range(3):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01)
    warmup.update(3, {"train/top1": 50.0})
    refresh_lr(scheduler)
    assert optimizer.param_groups[0]["lr"] == scheduler.get_last_lr()[0] == pytest.approx(0.1)
