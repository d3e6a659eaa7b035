"""Training, evaluation and analysis of the ResNet backbones and their detectors, shared by the scripts in `tools/`.

Data flows one way: config -> task builder -> backbone -> neck -> heads -> engine -> evaluator.

Sub-packages: `config` (the loader and the schemas), `data` (datasets, transforms, batching, synthetic shapes),
`engine` (the loop, solver, checkpoints, distributed set-up, metrics), `evaluation` (COCO, detectors, classifiers,
pictures), `tasks` (detection and classification from a config), `analysis` (the paper's facts and figures) and
`benchmarks` (ours against the peer, side by side).
"""
