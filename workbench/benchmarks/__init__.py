"""Speed of ours against the peer library, side by side in one process: backbones, detector inference and training
steps, the detection data pipeline, COCO evaluation, the time to the demo's AP; and the memory of loading a large
annotation file. The command line is `tools/benchmark.py`.

Every case starts with the machine line (`timing.machine_line`), prints a table of times and the ratio peer/ours,
and writes `<case>.json` and `<case>.md` to its settings' `output_dir`; `timing` holds what they share. Each case
takes its settings (a dataclass of the case's module) and returns its rows.
"""
from collections.abc import Callable

from backbones.old_paths import moved_names
from workbench.benchmarks import (
    annotation_memory,
    backbone,
    coco_eval,
    data_pipeline,
    demo_time,
    detector_inference,
    detector_train,
    roi_align,
)


def _printing(benchmark: Callable[[object], list[dict]], print_rows: Callable[[list[dict]], None]
              ) -> Callable[[object], list[dict]]:
    """`benchmark`, then `print_rows` of its rows (for the cases that leave printing their table to the caller)."""
    def run(settings) -> list[dict]:
        rows = benchmark(settings)
        print_rows(rows)
        return rows
    return run


# name: (help, settings class, run(settings) -> rows)
CASES = {
    "backbone": ("our features_only ResNet vs torchvision's IntermediateLayerGetter and timm's features_only, eval "
                 "and training", backbone.BackboneSettings,
                 _printing(backbone.benchmark_backbone, backbone.print_table)),
    "detector-inference": ("Faster / Mask R-CNN R50-FPN inference vs torchvision's models on the same checkpoint",
                           detector_inference.InferenceSettings, detector_inference.benchmark_detector_inference),
    "detector-train": ("Mask R-CNN R50-FPN training step vs torchvision's on the same weights, and the demo's "
                       "R18-FPN", detector_train.TrainSettings, detector_train.benchmark_detector_train),
    "coco-eval": ("COCO evaluation, ours vs pycocotools, bbox and segm", coco_eval.CocoEvalSettings,
                  _printing(coco_eval.benchmark_coco_eval, coco_eval.print_coco_eval_table)),
    "data": ("our detection training data pipeline vs torchvision.transforms.v2 over the same shapes files",
             data_pipeline.DataSettings, data_pipeline.benchmark_data_pipeline),
    "roi-align": ("multi-scale RoIAlign on CPU, forward and backward, vs torchvision's at the demo's and R50-FPN "
                  "Mask R-CNN's shapes", roi_align.RoiAlignSettings, roi_align.benchmark_roi_align),
    "demo": ("time to the demo's AP: our demo detector vs torchvision's Mask R-CNN R18-FPN, trained alike",
             demo_time.DemoSettings, demo_time.benchmark_demo),
    "annotation-memory": ("peak memory of loading a large annotation file: ours vs pycocotools, each in a fresh "
                          "process", annotation_memory.MemorySettings,
                          _printing(annotation_memory.benchmark_annotation_memory,
                                    annotation_memory.print_annotation_memory_table)),
}


# The command line's parts moved to workbench.cli (deprecated path, for one release).
__getattr__ = moved_names(__name__, {name: ("workbench.cli.benchmark", name)
                                     for name in ("add_cases", "run_benchmark")})
