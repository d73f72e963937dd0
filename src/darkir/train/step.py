"""One optimizer step of the recipe: the losses (pixel, side output, the official edge and perceptual losses,
detail anchor, tone split), AdamW with its cosine schedule, the fp16 grad scaler of mixed precision, and
gradient clipping."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from darkir.errors import DarkIRError
from darkir.models.darkir import DarkIR
from darkir.options import Options
from darkir.train.losses import PIXEL_LOSSES, DetailAnchor, global_tone, laplacian_band, side_target, tone_matched
from darkir.train.perceptual import PerceptualLoss


class TrainStep:
    """Computes the loss of a batch and steps the optimizer, the schedule and the scaler. The losses and mixed
    precision are set up from ``options.train`` when it is made; the weights and clipping are read from it at each
    step, so that a resumed run uses its options' (:meth:`Trainer.resume` replaces the schedule settings only). It adds
    up the terms of :data:`darkir.options.LOSS_TERMS` that are on, always in one order (pixel and tone, edge,
    perceptual, side output, anchor), which an exact resume relies on."""

    def __init__(
        self,
        options: Options,
        model: DarkIR,
        net: nn.Module,
        total_steps: int,
        device: torch.device,
        memory_format: torch.memory_format,
    ) -> None:
        """``model``: the bare network, whose trainable parameters are optimized; ``net``: what runs it (``model``
        itself, or its DDP wrapper); ``total_steps``: the length of the cosine schedule; ``device`` and
        ``memory_format``: where and how the batches go."""
        self.options, self.model, self.net = options, model, net
        self.device, self.memory_format = device, memory_format
        train_cfg = options.train
        self.optimizer = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad],
            lr=train_cfg.lr_initial,
            betas=train_cfg.betas,
            weight_decay=train_cfg.weight_decay,
        )
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.optimizer, T_max=total_steps, eta_min=train_cfg.eta_min
        )
        self.amp = train_cfg.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.pixel_loss = PIXEL_LOSSES[train_cfg.pixel_criterion]
        self.side_loss = train_cfg.enhance
        self.side_criterion = PIXEL_LOSSES[train_cfg.enhance_criterion.lower()] if self.side_loss else None
        self.anchor = (
            DetailAnchor(train_cfg.anchor, self.device, memory_format) if train_cfg.anchor is not None else None
        )
        self.perceptual = (
            PerceptualLoss(train_cfg.perceptual_criterion, train_cfg.perceptual_reduction, self.device)
            if train_cfg.perceptual
            else None
        )

    def state_dict(self) -> dict[str, Any]:
        """The optimizer's, the schedule's and the scaler's state, under the keys training checkpoints store them."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
        }

    def load_state_dict(self, payload: dict[str, Any]) -> None:
        """Continue from a training checkpoint's ``optimizer``, ``scheduler`` and ``scaler`` state."""
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        self.scaler.load_state_dict(payload["scaler"])

    @property
    def lr(self) -> float:
        """The learning rate of the next step."""
        return self.optimizer.param_groups[0]["lr"]

    def _pixel_terms(self, out: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        """The weighted pixel loss (with ``train.tone_split``, on the tone-matched output plus the global-tone term),
        plus the edge and perceptual losses where they are on."""
        train_cfg, out = self.options.train, out.float()
        if not train_cfg.tone_split:
            loss = train_cfg.pixel_weight * self.pixel_loss(out, high)
        else:
            detail = self.pixel_loss(tone_matched(out, high), high)
            loss = train_cfg.pixel_weight * detail + train_cfg.tone_weight * global_tone(out, high)
        if train_cfg.edge:
            criterion = PIXEL_LOSSES[train_cfg.edge_criterion]
            edges = criterion(laplacian_band(out), laplacian_band(high), reduction=train_cfg.edge_reduction)
            loss = loss + train_cfg.edge_weight * edges
        if self.perceptual is not None:
            loss = loss + train_cfg.perceptual_weight * self.perceptual(out, high)
        return loss

    def _loss(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        """The whole loss of one batch (under autocast where mixed precision is on)."""
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
            if self.side_loss:
                side, out = self.net(low, side_loss=True)
                loss = self._pixel_terms(out, high)
                target = side_target(high, side.shape[-2:])
                loss = loss + self.options.train.enhance_weight * self.side_criterion(side.float(), target)
            else:
                out = self.net(low)
                loss = self._pixel_terms(out, high)
            if self.anchor is not None:
                loss = loss + self.options.train.anchor_weight * self.anchor(low, out)
        return loss

    def __call__(self, batch: dict[str, Any], step: int) -> float:
        """Train on ``batch`` (its ``low`` and ``high`` images) and return the loss; ``step``: the steps done before
        (named when the loss is not finite)."""
        low = batch["low"].to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
        high = batch["high"].to(self.device, non_blocking=True)
        loss = self._loss(low, high)
        if not torch.isfinite(loss):
            raise DarkIRError(f"the loss became {loss.item()} at step {step}; lower train.lr_initial")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.options.train.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.options.train.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return loss.item()
