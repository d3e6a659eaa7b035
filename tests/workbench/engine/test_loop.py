"""The training loop's guards, on a toy model."""
import json
import re
from pathlib import Path

import pytest
import torch

from workbench.config.schemas import CLASSIFICATION_DEFAULTS
from workbench.engine import checkpoints, distributed
from workbench.engine.loop import LoopSettings, NonFiniteError, TrainState, train_loop
from workbench.engine.solver import ErrorWarmup, build_scheduler

SOLVER = dict(CLASSIFICATION_DEFAULTS["solver"], max_iter=10, steps=[])


def toy_state() -> TrainState:
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return TrainState(model, optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: 1.0),
                      torch.amp.GradScaler("cpu", enabled=False))


def batches():
    while True:
        yield torch.ones(4, 2)


def nan_loss_at(iteration):
    def step(model, x):
        value = model(x).mean()
        return {"loss_ok": value, "loss_bad": value * float("nan") if step.state.iteration == iteration else value}
    return step


def nan_gradient_at(iteration, value=float("nan")):
    def step(model, x):
        output = model(x).mean()
        if step.state.iteration == iteration:
            handle = model.weight.register_hook(lambda grad: (handle.remove(), grad * value)[1])
        return {"loss": output}
    return step


NONFINITE = {  # case: (step, what the message names)
    "NaN loss term": (nan_loss_at(2), "non-finite loss at iteration 3: loss_bad=nan"),
    "NaN gradient": (nan_gradient_at(2), r"non-finite gradients at iteration 3 \(grad_norm=nan\)"),
    "infinite gradient": (nan_gradient_at(2, float("inf")), r"non-finite gradients at iteration 3 \(grad_norm=inf\)"),
}


@pytest.mark.parametrize("case", NONFINITE)
def test_a_non_finite_step_stops_the_run_naming_the_iteration(tmp_path, case):
    step, message = NONFINITE[case]
    state = step.state = toy_state()
    with pytest.raises(NonFiniteError, match=message):
        train_loop(state, batches(), step, LoopSettings(max_iter=5), str(tmp_path), {})
    assert state.iteration == 2


@pytest.mark.parametrize("clip", [None, 1.0])
@pytest.mark.parametrize("case", NONFINITE)
def test_a_non_finite_step_is_skipped_and_counted_when_the_config_says_so(tmp_path, caplog, case, clip):
    step, message = NONFINITE[case]
    state = step.state = toy_state()
    weights = [state.model.weight.detach().clone()]

    def recorded(model, x):
        weights.append(model.weight.detach().clone())
        return step(model, x)

    train_loop(state, batches(), recorded, LoopSettings(max_iter=5, on_nonfinite="skip", clip_grad_norm=clip),
               str(tmp_path), {})
    weights.append(state.model.weight.detach().clone())
    changed = [not torch.equal(before, after) for before, after in zip(weights[1:], weights[2:])]
    assert state.iteration == 5 and state.skipped_steps == 1 and changed == [True, True, False, True, True]
    assert all(torch.isfinite(w).all() for w in weights)
    assert sum(bool(re.search(message, r.getMessage())) and "step skipped (1 skipped so far" in r.getMessage()
               for r in caplog.records) == 1
    assert torch.load(tmp_path / "model_final.pth", weights_only=True)["skipped_steps"] == 1


def test_a_skipped_step_keeps_an_enabled_loss_scaler_usable_and_its_scale(tmp_path):
    """fp16 AMP's scaler (enabled here without autocast): after the skipped step the run goes on, and the scale
    neither backs off nor grows, since the loss was not finite before it was scaled."""
    step = nan_loss_at(2)
    state = step.state = toy_state()
    state.scaler = torch.amp.GradScaler("cpu", enabled=True)
    initial_scale = state.scaler.get_scale()
    train_loop(state, batches(), step, LoopSettings(max_iter=5, on_nonfinite="skip"), str(tmp_path), {})
    assert state.iteration == 5 and state.skipped_steps == 1
    assert torch.isfinite(state.model.weight).all() and torch.isfinite(state.model.bias).all()
    assert state.scaler.get_scale() == initial_scale


def test_accumulation_steps_once_on_the_mean_gradient_of_the_micro_batches(tmp_path):
    """Three different micro-batches per step: the weights move as one SGD step on the mean of their losses, and
    the logged loss is that mean."""
    state = toy_state()
    reference = toy_state()
    reference.model.load_state_dict(state.model.state_dict())
    micro_batches = [torch.full((4, 2), float(k)) for k in range(1, 7)]

    def step(model, x):
        return {"loss": model(x).square().sum()}

    train_loop(state, iter(micro_batches), step, LoopSettings(max_iter=2, accumulate=3, log_period=1),
               str(tmp_path), {})
    logged = []
    for first in (0, 3):
        reference.optimizer.zero_grad()
        losses = [step(reference.model, x)["loss"] for x in micro_batches[first:first + 3]]
        mean = sum(losses) / 3
        mean.backward()
        reference.optimizer.step()
        logged.append(mean.item())
    assert state.iteration == 2
    for key, value in reference.model.state_dict().items():
        torch.testing.assert_close(state.model.state_dict()[key], value, rtol=1e-6, atol=0, msg=key)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in records] == pytest.approx(logged, rel=1e-6)


def test_only_loss_terms_are_minimised_and_logs_are_period_means(tmp_path):
    state = toy_state()

    def step(model, x):
        return {"loss": model(x).sum() * 0, "accuracy": torch.tensor(float(state.iteration))}

    train_loop(state, batches(), step, LoopSettings(max_iter=4, log_period=2), str(tmp_path), {})
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["iteration"], r["accuracy"], r["loss"]) for r in records] == [(2, 0.5, 0.0), (4, 2.5, 0.0)]


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a GPU"))])
@pytest.mark.parametrize("saved_with_amp, resumed_with_amp", [(False, True), (True, False)])
def test_amp_can_be_switched_on_or_off_across_a_resume(tmp_path, device, saved_with_amp, resumed_with_amp):
    def state_with(amp: bool) -> TrainState:
        model = torch.nn.Linear(2, 1).to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        return TrainState(model, optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: 1.0),
                          torch.amp.GradScaler(device, enabled=amp), torch.device(device))

    def step(model, x):
        return {"loss": model(x.to(device)).square().mean()}

    saved = state_with(saved_with_amp)
    train_loop(saved, batches(), step, LoopSettings(max_iter=2, amp=saved_with_amp), str(tmp_path), {})
    resumed = state_with(resumed_with_amp)
    resumed.load_state_dict(checkpoints.load_training_state(checkpoints.last_checkpoint(tmp_path)))
    train_loop(resumed, batches(), step, LoopSettings(max_iter=4, amp=resumed_with_amp), str(tmp_path), {})
    assert resumed.iteration == 4 and resumed.scaler.is_enabled() == resumed_with_amp
    assert torch.isfinite(resumed.model.weight).all()


def test_the_error_warmup_ends_when_the_logged_training_error_drops_and_survives_a_resume(tmp_path, capsys):
    def warmup_state() -> TrainState:
        model = torch.nn.Linear(2, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        warmup = ErrorWarmup(until_error=80, factor=0.1)
        return TrainState(model, optimizer, build_scheduler(optimizer, SOLVER, warmup),
                          torch.amp.GradScaler("cpu", enabled=False), error_warmup=warmup)

    def step(model, x):  # 10% accuracy for the first 5 iterations, then 50%
        accuracy = 10.0 if step.state.iteration < 5 else 50.0
        return {"loss": model(x).square().mean(), "train/top1": torch.tensor(accuracy)}

    state = step.state = warmup_state()
    train_loop(state, batches(), step, LoopSettings(max_iter=4, log_period=2, checkpoint_period=4), str(tmp_path), {})
    assert state.error_warmup.ended_at is None and state.optimizer.param_groups[0]["lr"] == pytest.approx(0.01)
    resumed = step.state = warmup_state()
    resumed.load_state_dict(checkpoints.load_training_state(checkpoints.last_checkpoint(tmp_path)))
    train_loop(resumed, batches(), step, LoopSettings(max_iter=10, log_period=2, checkpoint_period=4), str(tmp_path),
               {})
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["iteration"], r["lr"], r.get("warmup_ended")) for r in records] == [
        (2, pytest.approx(0.01), None), (4, pytest.approx(0.01), None), (6, pytest.approx(0.01), 1.0),
        (8, pytest.approx(0.1), None), (10, pytest.approx(0.1), None)]
    printed = capsys.readouterr()
    assert "iteration 6: training error 70.0% < 80%, the warm-up ends: lr 0.01 -> 0.1" in printed.out + printed.err
    assert resumed.error_warmup.ended_at == 6
    assert torch.load(tmp_path / "model_final.pth", weights_only=True)["error_warmup"] == {"ended_at": 6}
    again = warmup_state()
    again.load_state_dict(checkpoints.load_training_state(checkpoints.last_checkpoint(tmp_path)))
    assert again.error_warmup.ended_at == 6


def warmup_rank(rank: int, folder: str) -> None:
    """One of two gloo processes: rank 0 logs 60% training accuracy from the third iteration on, rank 1 always 0%;
    writes the iteration where its warm-up ended and its final learning rate."""
    distributed.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank, world_size=2)
    try:
        model = torch.nn.Linear(2, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        warmup = ErrorWarmup(until_error=80, factor=0.1)
        state = TrainState(model, optimizer, build_scheduler(optimizer, SOLVER, warmup),
                           torch.amp.GradScaler("cpu", enabled=False), error_warmup=warmup)

        def step(model, x):
            accuracy = 60.0 if rank == 0 and state.iteration >= 2 else 0.0
            return {"loss": model(x).square().mean(), "train/top1": torch.tensor(accuracy)}

        train_loop(state, batches(), step, LoopSettings(max_iter=6, log_period=2), f"{folder}/run", {})
        result = {"ended_at": warmup.ended_at, "lr": optimizer.param_groups[0]["lr"]}
        (Path(folder) / f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        distributed.cleanup()


def test_every_ddp_rank_ends_the_error_warmup_at_the_same_iteration(tmp_path):
    torch.multiprocessing.spawn(warmup_rank, args=(str(tmp_path),), nprocs=2)
    results = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(2)]
    assert results == [{"ended_at": 4, "lr": pytest.approx(0.1)}] * 2  # the mean error, 70%, is below 80% on both
