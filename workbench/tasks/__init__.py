"""Detection and classification as the configs describe them: build the data and the model, train, evaluate."""
from backbones.old_paths import register_moved_modules

# Loading a model to predict with joined `prediction` (deprecated path, for one release).
register_moved_modules({"workbench.tasks.predictors": "workbench.tasks.prediction"})
