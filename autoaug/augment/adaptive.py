"""Adaptive augmentation: controllers that change a policy during training from the training state.

A policy whose schedule kind is ``feedback`` or ``augnet`` gets a controller (:func:`controller_for`);
the trainer asks it for the policy and magnitude factor of each batch and tells it how training goes.

- :class:`FeedbackController` reads the validation loss after every epoch, or, with ``every`` > 0, its loss
  on a fixed subset of 1,024 validation images every ``every`` batches. When the loss fell at each of the
  last ``window`` readings by more than ``tol`` (relative), the level (the magnitude factor of every op
  without a schedule of its own) goes up by ``up``; when it did not fall by ``tol`` over the window, the
  level goes down by ``down``; otherwise it holds. Each decision starts a fresh window. Ops with a
  schedule of their own (the basic flips and crops of the ``feedback`` preset) are not scaled.
- :class:`AugNetController` runs a small MLP (64 and 32 hidden units) that maps the training state to
  per-op magnitudes and probabilities, as fractions of the policy's own values (which are thus upper
  bounds). Every ``segment`` batches it draws a new setting and learns online by REINFORCE: the reward
  of a setting is the fall of the loss on a held-out batch of training images (never trained on) over
  the segment it was used for, minus a running baseline, divided by a running scale.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from itertools import pairwise
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from autoaug.augment.ops import OPS
from autoaug.augment.policy import OpConfig, Policy
from autoaug.augment.schedule import Schedule
from autoaug.seeding import make_generator


class Controller(Protocol):
    """What the trainer needs of an adaptive controller."""

    holdout: int  # training images the controller needs kept out of training (0: none)
    validation: int  # validation images the controller reads during an epoch (0: none)

    def current(self, progress: float) -> tuple[Policy, float | None]:
        """The policy and magnitude factor (``None``: the policy's own schedule) for the next batch."""

    def after_step(self, model: nn.Module, step: int) -> None:
        """Called after every optimizer step (``step`` counts from 1 over the whole run)."""

    def after_epoch(self, epoch: int, metrics: Mapping[str, float]) -> dict[str, float]:
        """Called after each epoch's validation; returns values to log for that epoch."""


@torch.no_grad()
def _loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Cross-entropy of ``model`` on float images ``x [N, C, H, W]`` in eval mode; the mode is restored."""
    was_training = model.training
    model.eval()
    loss = F.cross_entropy(model(x), y).item()
    model.train(was_training)
    return loss


@dataclass(frozen=True)
class Decision:
    """One feedback decision: at ``at`` (an epoch, or a batch with ``every``), the relative val-loss change
    over the window, the action and the new level."""

    at: int
    signal: float
    action: int  # +1 up, 0 hold, -1 down
    level: float


class FeedbackController:
    """Raises augmentation while validation loss keeps falling, lowers it when it stalls or rises."""

    holdout = 0
    VALIDATION = 1024  # validation images read every ``every`` batches

    def __init__(self, policy: Policy) -> None:
        p = policy.schedule.params
        self.policy = policy
        self.window, self.tol, self.up, self.down = int(p["window"]), p["tol"], p["up"], p["down"]
        self.every = int(p["every"])
        self.validation = self.VALIDATION if self.every else 0
        self.val: tuple[torch.Tensor, torch.Tensor] | None = None
        self.level = p["start"]
        self.losses: list[float] = []
        self.decisions: list[Decision] = []
        self.logged = 0  # decisions already reported by after_epoch

    def set_validation(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """The validation images (float in [0, 1], on the training device) read every ``every`` batches."""
        self.val = (x, y)

    def current(self, progress: float) -> tuple[Policy, float | None]:
        return self.policy, self.level

    def after_step(self, model: nn.Module, step: int) -> None:
        if not self.every or step % self.every:
            return
        if self.val is None:
            raise RuntimeError("FeedbackController with 'every' needs its validation images (set_validation)")
        self.decide(step, _loss(model, *self.val))

    def decide(self, at: int, val_loss: float) -> Decision:
        """Take one validation-loss reading; returns (and records) the decision."""
        if math.isfinite(val_loss):
            self.losses.append(val_loss)
        signal, action = float("nan"), 0
        if len(self.losses) > self.window:
            recent = self.losses[-(self.window + 1):]
            signal = (recent[-1] - recent[0]) / abs(recent[0])
            steady = all((b - a) / abs(a) < -self.tol for a, b in pairwise(recent))
            action = 1 if steady else -1 if signal > -self.tol else 0
            if action:
                self.level = min(max(self.level + (self.up if action > 0 else -self.down), 0.0), 1.0)
                self.losses = self.losses[-1:]
        decision = Decision(at, signal, action, self.level)
        self.decisions.append(decision)
        return decision

    def after_epoch(self, epoch: int, metrics: Mapping[str, float]) -> dict[str, float]:
        """Per epoch: the last decision's signal, action and level, and how many decisions went up / down
        (with ``every``, the epoch's decisions; each one stays in :attr:`decisions`)."""
        if not self.every:
            self.decide(epoch, metrics["val_loss"])
        new, self.logged = self.decisions[self.logged:], len(self.decisions)
        last = new[-1] if new else Decision(epoch, float("nan"), 0, self.level)
        return {"feedback/signal": last.signal, "feedback/action": last.action, "feedback/level": self.level,
                "feedback/ups": sum(d.action > 0 for d in new), "feedback/downs": sum(d.action < 0 for d in new)}


class AugNet(nn.Module):
    """MLP ``[B, state_dim] -> [B, 2 * n_ops]`` logits of per-op magnitude and probability fractions."""

    def __init__(self, state_dim: int, n_ops: int, hidden: tuple[int, int] = (64, 32)) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(state_dim, hidden[0]), nn.ReLU(), nn.Linear(hidden[0], hidden[1]),
                                 nn.ReLU(), nn.Linear(hidden[1], 2 * n_ops))

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.net(state)


class AugNetController:
    """Learns online which magnitudes and probabilities to use next (see the module docstring)."""

    validation = 0

    def __init__(self, policy: Policy, seed: int, holdout: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        p = policy.schedule.params
        self.policy = replace(policy, schedule=Schedule())
        self.names = list(policy.ops)
        self.segment, self.sigma, self.holdout = int(p["segment"]), p["sigma"], int(p["holdout"])
        self.upper = torch.tensor([[policy.ops[n].magnitude for n in self.names],
                                   [policy.ops[n].probability for n in self.names]])  # [2, k]
        self.generator = make_generator(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net = AugNet(5 + 2 * len(self.names), len(self.names))
        self.opt = torch.optim.Adam(self.net.parameters(), lr=0.01)
        self.data = holdout
        self.fractions = torch.ones(2, len(self.names))  # the setting in use, as fractions of ``upper``
        self.in_use = self._policy()
        self.stats = {"train_loss": 0.0, "train_acc": 0.0, "val_loss": 0.0, "val_acc": 0.0, "progress": 0.0}
        self.pending: torch.Tensor | None = None  # log-probability of the setting in use
        self.loss_before = float("nan")
        self.baseline, self.scale = 0.0, 1.0
        self.rewards: list[float] = []
        self.used: list[torch.Tensor] = []  # fractions drawn this epoch

    def set_holdout(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """The held-out images (float in [0, 1], on the training device) and labels the reward is measured on."""
        self.data = (x, y)

    def current(self, progress: float) -> tuple[Policy, float | None]:
        self.stats["progress"] = progress
        return self.in_use, None

    def _policy(self) -> Policy:
        mags, probs = (self.upper * self.fractions).tolist()
        ops = {n: OpConfig(min(m, 1.0), min(q, 1.0), self.policy.ops[n].sampling)
               for n, m, q in zip(self.names, mags, probs, strict=True)}
        return replace(self.policy, ops=ops)

    def state(self) -> torch.Tensor:
        """``[1, 5 + 2k]``: recent train/val loss and accuracy, progress, and the fractions in use."""
        s = self.stats
        head = [math.log1p(s["train_loss"]), s["train_acc"], math.log1p(s["val_loss"]), s["val_acc"], s["progress"]]
        return torch.tensor(head + self.fractions.flatten().tolist()).nan_to_num(0.0).unsqueeze(0)

    def draw(self) -> torch.Tensor:
        """A new setting from the net at the current state; returns its log-probability (with grad)."""
        mean = self.net(self.state()).view(2, -1)
        z = mean.detach() + self.sigma * torch.randn(mean.shape, generator=self.generator)
        self.fractions = torch.sigmoid(z)
        self.in_use = self._policy()
        self.used.append(self.fractions)
        return torch.distributions.Normal(mean, self.sigma).log_prob(z).sum()

    def learn(self, reward: float) -> None:
        """One REINFORCE step on the pending draw with a running baseline and scale."""
        self.rewards.append(reward)
        advantage = (reward - self.baseline) / self.scale
        self.baseline = 0.9 * self.baseline + 0.1 * reward
        self.scale = max(0.9 * self.scale + 0.1 * abs(reward - self.baseline), 1e-6)
        loss = -advantage * self.pending  # type: ignore[operator]
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def after_step(self, model: nn.Module, step: int) -> None:
        if step % self.segment:
            return
        if self.data is None:
            raise RuntimeError("AugNetController needs its held-out batch (set_holdout) before training")
        loss = _loss(model, *self.data)
        if self.pending is not None and math.isfinite(self.loss_before):
            self.learn(self.loss_before - loss)
        self.loss_before = loss
        self.pending = self.draw()

    def after_epoch(self, epoch: int, metrics: Mapping[str, float]) -> dict[str, float]:
        self.stats.update({k: metrics[k] for k in ("train_loss", "train_acc", "val_loss", "val_acc")})
        used = torch.stack(self.used).mean(0) if self.used else self.fractions
        self.used = []
        out = {"augnet/reward": sum(self.rewards) / len(self.rewards) if self.rewards else float("nan")}
        self.rewards = []
        mags, probs = (self.upper * used).tolist()
        for n, m, q in zip(self.names, mags, probs, strict=True):
            if OPS[n].has_magnitude:
                out[f"magnitude/{n}"] = m
            out[f"probability/{n}"] = q
        return out


def controller_for(policy: Policy, seed: int) -> Controller | None:
    """The controller a policy's schedule asks for, or ``None`` for a parametric schedule."""
    if policy.schedule.kind == "feedback":
        return FeedbackController(policy)
    if policy.schedule.kind == "augnet":
        return AugNetController(policy, seed)
    return None

