"""The device and backend of each process, and the collectives in a group that, like nccl, serves CUDA tensors only."""
import pytest
import torch
import torch.distributed as dist
from torch._subclasses.fake_tensor import FakeTensorMode

import heads
from workbench.data.coco import CocoDetection
from workbench.data.detection_transforms import build_transforms
from workbench.engine import distributed, loop
from workbench.evaluation.classifier import evaluate_classifier
from workbench.evaluation.detector import detect_dataset


@pytest.mark.parametrize("name, launched, local_rank, local_world_size, cuda_devices, expected", [
    ("auto", False, 0, 1, 0, "cpu"),
    ("auto", False, 0, 1, 2, "cuda:0"),
    ("auto", True, 1, 2, 2, "cuda:1"),
    ("auto", True, 1, 2, 0, "cpu"),
    ("cpu", True, 1, 2, 2, "cpu"),  # a CPU run on a GPU node: gloo, not nccl
    ("cuda", True, 1, 2, 2, "cuda:1"),
    ("cuda", False, 0, 1, 2, "cuda:0"),
    ("cuda:1", False, 0, 1, 2, "cuda:1"),
    ("cuda:1", True, 0, 1, 2, "cuda:1"),  # one process per node may pick its GPU
])
def test_device_follows_the_config_and_the_local_rank(name, launched, local_rank, local_world_size, cuda_devices,
                                                      expected):
    device = distributed.resolve_device(name, local_rank=local_rank, local_world_size=local_world_size,
                                        cuda_devices=cuda_devices, launched=launched)
    assert device == torch.device(expected)


@pytest.mark.parametrize("name, launched, local_rank, local_world_size, cuda_devices, message", [
    ("gpu", False, 0, 1, 1, "'gpu' is not a device; use auto, cpu, cuda or cuda:N"),
    ("cpu:1", False, 0, 1, 1, "is not a device"),
    ("cuda", False, 0, 1, 0, "train.device=cuda but no GPU is visible"),
    ("cuda:2", False, 0, 1, 2, r"train.device=cuda:2 but only 2 GPU\(s\) are visible \(cuda:0 to cuda:1\)"),
    ("cuda:0", True, 1, 2, 2, "would put all 2 processes of this node on one GPU; use train.device=cuda"),
    ("cuda", True, 2, 3, 2, r"LOCAL_RANK=2 but only 2 GPU\(s\) are visible on this node; start at most 2"),
])
def test_a_device_that_cannot_be_is_a_clear_error(name, launched, local_rank, local_world_size, cuda_devices,
                                                  message):
    with pytest.raises(ValueError, match=message):
        distributed.resolve_device(name, local_rank=local_rank, local_world_size=local_world_size,
                                   cuda_devices=cuda_devices, launched=launched)


@pytest.fixture
def cuda_only_group(tmp_path):
    """A one-process group whose default backend, like nccl, maps only CUDA tensors ("cuda:gloo")."""
    distributed.init_process_group("cuda:gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    yield
    distributed.cleanup()


def test_the_multi_gpu_crash_reproduced_on_the_cpu(cuda_only_group):
    """The logging reduce of the past sent a CPU float64 tensor; a CUDA-only group refuses it, as nccl does."""
    with pytest.raises(RuntimeError, match="No backend type associated with device type cpu"):
        dist.all_reduce(torch.tensor([1.0, 2.0], dtype=torch.float64))


def test_the_iteration_collective_sends_the_losses_device(cuda_only_group, monkeypatch):
    """The losses, the stop flag and the non-finite flags travel as one tensor on the losses' device: CUDA on GPUs."""
    sent = []
    monkeypatch.setattr(dist, "all_reduce", lambda tensor, *args, **kwargs: sent.append(tensor.device))
    with FakeTensorMode():  # CUDA tensors without a GPU: their device is real, their values are not
        losses = {"loss_a": torch.ones((), device="cuda"), "loss_b": torch.ones((), device="cuda")}
        means, flags = loop.agree(losses, torch.zeros(2, device="cuda"), stop_requested=True)
    assert sent == [torch.device("cuda", 0)]
    assert flags.device.type == "cuda" and all(value.device.type == "cuda" for value in means.values())


def test_evaluation_gathers_and_checkpoint_waits_send_no_cpu_tensor_to_the_cuda_group(cuda_only_group, tmp_path,
                                                                                      tiny_shapes):
    """They run for real here: a CPU tensor given to the CUDA-only default group would raise."""
    torch.manual_seed(0)
    assert distributed.gather_to_main({"rank": 0}) == [{"rank": 0}]
    distributed.barrier()

    class Images(torch.utils.data.Dataset):
        classes = ["a", "b", "c"]

        def __len__(self):
            return 4

        def __getitem__(self, index):
            return torch.rand(3, 16, 16), index % 3

    classifier = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 3))
    assert evaluate_classifier(classifier, Images(), torch.device("cpu"), batch_size=2)["images"] == 4

    val_set = CocoDetection(tiny_shapes / "val", tiny_shapes / "annotations/instances_val.json", with_masks=False,
                            train=False, transforms=build_transforms(False))
    detector = heads.faster_rcnn("resnet18", num_classes=4, min_size=64, max_size=64)
    detections, _, _ = detect_dataset(detector, val_set, torch.device("cpu"), batch_size=2)
    assert isinstance(detections, list)

    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    state = loop.TrainState(model, optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: 1.0),
                              torch.amp.GradScaler("cpu", enabled=False))
    loop.save(state, str(tmp_path), {})
    assert len(torch.load(tmp_path / "checkpoint_0000000.pth", weights_only=True)["rng_per_rank"]) == 1
