"""Training: one loop for every network, losses, schedules, atomic checkpoints."""

from taskgrouper.train.losses import denormalise, task_loss, task_loss_sum
from taskgrouper.train.trainer import TrainingDiverged, TrainResult, evaluate_split, train

__all__ = ["TrainResult", "TrainingDiverged", "denormalise", "evaluate_split", "task_loss",
           "task_loss_sum", "train"]
