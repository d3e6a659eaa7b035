"""The training loop and what it stands on: solver, checkpoints, distributed set-up, stop signals, metrics."""
