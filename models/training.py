"""Early stopping on a validation loss, shared by the torch models of the ladder."""

from __future__ import annotations

import copy
import math

import torch


class DivergedError(FloatingPointError):
    """Raised when training produces a non-finite loss; the message names the epoch."""


def check_training_loss(loss: torch.Tensor, epoch: int) -> None:
    """Raise DivergedError when one batch's training loss is not finite."""
    if not torch.isfinite(loss):
        raise DivergedError(f"diverged: non-finite training loss at epoch {epoch}")


class EarlyStopping:
    """Weights of the epoch with the lowest validation loss so far, kept while a network trains.

    `update` returns True once `patience` epochs have passed without a lower loss.
    A tie does not count as an improvement, so the earliest of equal epochs is kept.
    """

    def __init__(self, patience: int):
        self.patience = patience
        self.best_loss = math.inf
        self.best_epoch = 0
        self.best_state: dict | None = None

    def update(self, epoch: int, validation_loss: float, network: torch.nn.Module) -> bool:
        if not math.isfinite(validation_loss):
            raise DivergedError(f"diverged: non-finite validation loss at epoch {epoch}")
        if validation_loss < self.best_loss:
            self.best_loss, self.best_epoch = validation_loss, epoch
            self.best_state = copy.deepcopy(network.state_dict())
            return False
        return epoch - self.best_epoch >= self.patience

    def restore(self, network: torch.nn.Module) -> None:
        """Load the weights of the best epoch into `network`."""
        network.load_state_dict(self.best_state)
