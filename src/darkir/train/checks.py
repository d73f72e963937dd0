"""The checks of an options file's training settings that darkir makes before any work: losses it can train with
(:data:`darkir.options.LOSS_TERMS`), a training set, and checkpoint paths that can hold a run."""

from __future__ import annotations

from darkir.errors import ConfigError
from darkir.options import LOSS_TERMS, Options


def _check_perceptual(options: Options) -> None:
    """Refuse ``train.perceptual`` settings the official VGG loss does not take, and a missing VGG19 weights file."""
    from darkir.train.perceptual import check_vgg19_weights

    if options.train.perceptual_criterion == "fro":
        raise ConfigError(
            f"{options.source}: train.perceptual_criterion: 'fro' is not supported (nor by the official VGG loss); "
            "set it to l1 or l2"
        )
    if options.train.perceptual_reduction == "none":
        raise ConfigError(
            f"{options.source}: train.perceptual_reduction: 'none' gives no loss to train on; set it to mean or sum"
        )
    try:
        check_vgg19_weights()
    except ConfigError as exc:
        raise ConfigError(f"{options.source}: {exc}") from None


def _check_some_loss(options: Options) -> None:
    """Refuse a loss of weight 0 in every term that is on: it gives no gradient, and weight decay alone would shrink
    the weights."""
    train = options.train
    weights = {term.weight: getattr(train, term.weight) for term in LOSS_TERMS if term.trained and term.is_on(train)}
    if not any(weights.values()):
        zeros = ", ".join(f"train.{key}: 0" for key in weights)
        raise ConfigError(
            f"{options.source}: every loss term that is on has weight 0 ({zeros}): there is nothing to train on (and "
            "weight decay alone would shrink the weights); give one a positive weight"
        )


def check_trainable(options: Options) -> None:
    """Refuse, before any work, settings darkir cannot train with (each named with its key)."""
    if options.train.perceptual:
        _check_perceptual(options)
    if options.train.enhance and options.train.enhance_reduction != "mean":
        raise ConfigError(
            f"{options.source}: train.enhance_reduction: {options.train.enhance_reduction!r} is not supported (the "
            "side-output loss is averaged over its pixels); set it to mean"
        )
    if options.train.edge and options.train.edge_reduction == "none":
        raise ConfigError(
            f"{options.source}: train.edge_reduction: 'none' gives no loss to train on (one value per pixel); set it "
            "to mean or sum"
        )
    _check_some_loss(options)
    if not options.datasets.train.train_path and options.datasets.train.synth is None:
        raise ConfigError(f"{options.source}: datasets.train.train_path is not set (nor datasets.train.synth)")
    for key in ("path", "best"):
        if str(getattr(options.save, key) or "").lower().endswith(".safetensors"):
            raise ConfigError(
                f"{options.source}: save.{key}: training checkpoints hold the optimizer and schedule, which "
                ".safetensors cannot store; use a .pt path (darkir convert makes a .safetensors from it)"
            )
