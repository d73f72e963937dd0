"""Typed options files in the seed/official YAML format, validated with clear, keyed errors.

Every key of the official DarkIR and seed option files is accepted (keys they read but we do not
use are kept so the files load unchanged); keys added by darkir are documented in ``Field``
descriptions and in the README. Unknown keys, wrong types and bad values raise
:class:`~darkir.errors.ConfigError` naming the file and the dotted key. Reading the files (their YAML dialect and
``key=value`` overrides) is :mod:`darkir.optionsfile`'s.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_type_hints

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from darkir.errors import ConfigError, DarkIRError, printable, short_repr, some_of, warn
from darkir.memory_sizes import parse_memory
from darkir.models.config import SEQUENCE_FIELDS, ModelConfig, config_problems
from darkir.optionsfile import parse_overrides, read_options_file


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        """Refuse a boolean (YAML's true/false, yes/no, on/off) where no boolean goes: pydantic would read it as
        the number 1 or 0 (``epochs: yes`` as one epoch)."""
        if _misplaced_boolean(value, cls.model_fields[info.field_name].annotation):
            raise ValueError(
                "a boolean where a number or name goes (YAML reads true/false, yes/no, on/off as booleans)"
            )
        return value


def _misplaced_boolean(value: Any, annotation: Any) -> bool:
    """Whether ``value`` (or an item of it, a list or tuple) is a boolean where a field of type ``annotation`` takes
    none."""
    items = value if isinstance(value, list | tuple) else [value]
    return any(isinstance(item, bool) for item in items) and not _takes_booleans(annotation)


def _takes_booleans(annotation: Any) -> bool:
    """Whether a field of type ``annotation`` holds booleans (``bool``, ``Any``, or a type made of them)."""
    return annotation is bool or annotation is Any or any(_takes_booleans(arg) for arg in get_args(annotation))


class DeviceOptions(_Section):
    """``device:`` (official files; darkir picks devices itself, so these are informational)."""

    cuda: bool = True
    gpus: int | str | None = None
    ids: list[int] | None = None


class SynthDataOptions(_Section):
    """``datasets.train.synth:`` (darkir): degrade clean photos on the fly instead of reading ``train_path``.

    Whole photos are held out for validation and testing (as ``darkir synth`` does); every training
    sample is a fresh degradation drawn from (``train.seed``, epoch, index). Validation uses a fixed
    synthetic set of the held-out photos unless ``datasets.val.test_path`` is set.
    """

    sources: list[str] = Field(default_factory=lambda: ["debian"], description="photo folders or 'debian'")
    pairs_per_epoch: int = Field(800, ge=1, description="training samples per epoch")
    val_photos: int = Field(3, ge=0, description="photos held out for validation")
    test_photos: int = Field(6, ge=0, description="photos held out for testing (never seen)")
    split_seed: int = Field(
        0, ge=0, lt=2**32, description="seed of the photo split (darkir synth's seed gives the same split)"
    )
    val_pairs: int = Field(24, ge=1, description="fixed validation pairs made from the validation photos")
    val_cropsize: int = Field(256, ge=8, description="side of the validation pairs")
    max_zoom_out: float = Field(4.0, ge=1.0, description="a crop sees 1x to this many times its side of the photo")
    max_short_side: int = Field(1024, ge=64, description="photos are first downscaled to this short side")
    degradation: dict[str, Any] = Field(
        default_factory=dict, description="overrides of darkir.data.degradation.SynthParams, e.g. target_mean_range"
    )

    @field_validator("degradation")
    @classmethod
    def _valid_degradation(cls, value: dict[str, Any]) -> dict[str, Any]:
        """Known SynthParams fields only, with their types (so ``1e-4``, a string to YAML 1.1, is a float; a
        boolean is no number)."""
        from darkir.data.degradation import SynthParams, synth_params

        params = synth_params(value)
        types = get_type_hints(SynthParams)
        for key, given in value.items():
            if _misplaced_boolean(given, types[key]):
                raise ValueError(f"{key}: a boolean where a number goes (got {given!r})")
        return {key: getattr(params, key) for key in value}


#: The most data-loading processes a training process starts (each is a process: 100000 took the machine down).
MAX_LOADER_WORKERS = 256


class TrainDataOptions(_Section):
    """``datasets.train:``"""

    train_path: str | None = Field(None, description="root of the training pairs")
    n_workers: int = Field(
        4, ge=0, le=MAX_LOADER_WORKERS, description="data-loading worker processes per GPU/process (at most 256)"
    )
    batch_size_train: int = Field(4, ge=1, description="batch size per process")
    cropsize: int = Field(256, ge=8, description="side of the random square training crops")
    flips: bool = Field(True, description="random horizontal and vertical flips")
    verbose: bool = True
    crop_type: Literal["Random", "Center"] = Field("Random", description="'Random' or 'Center' crops (any case)")
    rot90: bool = Field(False, description="random 90-degree rotations (darkir)")
    synth: SynthDataOptions | None = Field(None, description="pairs made on the fly from clean photos (darkir)")

    @field_validator("crop_type", mode="before")
    @classmethod
    def _crop_type_in_any_case(cls, value: Any) -> Any:
        """``random``, ``CENTER``: the crop types in any case, as the loss criteria are taken."""
        return value.capitalize() if isinstance(value, str) and value.lower() in ("random", "center") else value

    @field_validator("synth")
    @classmethod
    def _crop_fits_photos(cls, value: SynthDataOptions | None, info: ValidationInfo) -> SynthDataOptions | None:
        """Crops no larger than the photos' short side (``synth.max_short_side``)."""
        if value is None:
            return value
        for name, side in (("cropsize", info.data.get("cropsize")), ("synth.val_cropsize", value.val_cropsize)):
            if side is not None and side > value.max_short_side:
                raise ValueError(
                    f"{name} {side} is larger than synth.max_short_side {value.max_short_side}, the photos' short side"
                )
        return value


class ValDataOptions(_Section):
    """``datasets.val:``"""

    test_path: str | None = Field(None, description="root of the validation/test pairs (or unpaired images)")
    batch_size_test: int = Field(1, ge=1)


class DatasetsOptions(_Section):
    """``datasets:``"""

    name: str = "LOLBlur"
    train: TrainDataOptions = Field(default_factory=TrainDataOptions)
    val: ValDataOptions = Field(default_factory=ValDataOptions)


#: ``network:`` keys of an older official training code, taken as ``None`` only (:class:`_NetworkBase`).
OLDER_NETWORK_KEYS = ("enc_blk_nums_map", "middle_blk_num_map", "residual_layers", "spatial", "ksize")


class _NetworkBase(_Section):
    """What ``network:`` holds besides the :class:`ModelConfig` fields that :func:`_network_options` adds."""

    name: str = "DarkIR"
    resume_training: bool = False
    #: Settings of an older official training code's network (its files write ``None`` for each), which DarkIR as
    #: published has no use for: only ``None`` is taken.
    enc_blk_nums_map: None = None
    middle_blk_num_map: None = None
    residual_layers: None = None
    spatial: None = None
    ksize: None = None

    @field_validator(*OLDER_NETWORK_KEYS, mode="before")
    @classmethod
    def _none_only(cls, value: Any) -> None:
        """``None`` (YAML's null, or the text the older official files write); another value is refused."""
        if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null", "~", "")):
            return None
        raise ValueError("a setting of an older official network that DarkIR as published has no use for: only None")

    def settings(self) -> ModelConfig:
        """The network this section describes."""
        return ModelConfig.from_kwargs(self.config_values())

    def config_values(self) -> dict[str, Any]:
        """This section's :class:`ModelConfig` fields, by their names there (``img_channels`` is ``img_channel``)."""
        values = self.model_dump(exclude={"name", "resume_training", *OLDER_NETWORK_KEYS})
        values["img_channel"] = values.pop("img_channels")
        return values

    def model_kwargs(self) -> dict[str, Any]:
        """:meth:`settings` as DarkIR constructor kwargs (the form checkpoints store)."""
        return self.settings().as_kwargs()

    def written_kwargs(self) -> dict[str, Any]:
        """The :meth:`model_kwargs` that this section sets (in the file or by an override): what weights loaded under
        these options must agree with; the settings it leaves out come from the weights."""
        return {
            name: value for name, value in self.model_kwargs().items() if network_key(name) in self.model_fields_set
        }


def network_key(field: str) -> str:
    """The ``network:`` key of the :class:`ModelConfig` field ``field`` (the files write ``img_channels``)."""
    return "img_channels" if field == "img_channel" else field


def yaml_value(value: object) -> str:
    """``value`` as an options file writes it (``true``, ``[1, 4, 9]``)."""
    if isinstance(value, bool):
        return str(value).lower()
    return str(list(value)) if isinstance(value, tuple) else str(value)


def _network_options() -> type[_NetworkBase]:
    """The ``network:`` section: :class:`ModelConfig`'s fields with their defaults, bounds and descriptions (its
    ``img_channel`` is the files' ``img_channels``)."""
    hints = get_type_hints(ModelConfig)
    keys: dict[str, Any] = {}
    for item in dataclasses.fields(ModelConfig):
        key = network_key(item.name)
        if item.name in SEQUENCE_FIELDS:
            bounds = dict(item.metadata)
            entry = Annotated[int, Field(ge=bounds.pop("item_ge", None), le=bounds.pop("item_le", None))]
            default = functools.partial(list, item.default)
            keys[key] = (list[entry], Field(default_factory=default, **bounds))
        else:
            keys[key] = (hints[item.name], Field(item.default, **item.metadata))
    doc = "``network:``: the model (:class:`ModelConfig`'s fields; ``img_channels`` is its ``img_channel``)."
    return create_model("NetworkOptions", __base__=_NetworkBase, __module__=__name__, __doc__=doc, **keys)


NetworkOptions = _network_options()


#: The criteria of the pixel-wise losses (``train.pixel_criterion``, ``enhance_criterion``, and the official files'
#: ``edge_criterion`` and ``frequency_criterion``): the names of :data:`darkir.train.losses.PIXEL_LOSSES`.
PixelCriterion = Literal["l1", "l2", "charbonnier"]
#: The official code's criteria of its perceptual loss (darkir trains with ``l1`` and ``l2``; ``fro`` is refused).
PerceptualCriterion = Literal["l1", "l2", "fro"]
#: The official code's loss reductions.
Reduction = Literal["none", "mean", "sum"]
#: An Adam/AdamW moment decay: in [0, 1).
Beta = Annotated[float, Field(ge=0, lt=1)]


@dataclasses.dataclass(frozen=True)
class LossTerm:
    """One term of the training loss by its ``train:`` keys: the ``switch`` that turns it on (None: always on; a
    key that holds a value or None, such as ``anchor``: on when set), its ``weight``, and its ``criterion`` and
    ``reduction`` where it has them; ``trained``: False for a term darkir accepts but does not train with."""

    name: str
    switch: str | None
    weight: str
    criterion: str | None = None
    reduction: str | None = None
    trained: bool = True

    def is_on(self, train: TrainOptions) -> bool:
        """Whether ``train`` turns this term on."""
        if self.switch is None:
            return True
        value = getattr(train, self.switch)
        return value if isinstance(value, bool) else value is not None


#: The terms of the training loss, in the order of their ``train:`` keys: the one list of them that the options'
#: checks, the trainer's and the notes of a resumed run read.
LOSS_TERMS = (
    LossTerm("pixel", None, "pixel_weight", "pixel_criterion"),
    LossTerm("perceptual", "perceptual", "perceptual_weight", "perceptual_criterion", "perceptual_reduction"),
    LossTerm("edge", "edge", "edge_weight", "edge_criterion", "edge_reduction"),
    LossTerm("frequency", "frequency", "frequency_weight", "frequency_criterion", "frequency_reduction", False),
    LossTerm("enhance", "enhance", "enhance_weight", "enhance_criterion", "enhance_reduction"),
    LossTerm("anchor", "anchor", "anchor_weight"),
    LossTerm("tone", "tone_split", "tone_weight"),
)
#: The ``train:`` keys that name a loss criterion or reduction (read in any case).
LOSS_NAME_KEYS = tuple(key for term in LOSS_TERMS for key in (term.criterion, term.reduction) if key)


class TrainOptions(_Section):
    """``train:``: optimizer, schedule and losses (seed recipe by default)."""

    lr_initial: float = Field(1e-4, gt=0)
    lr_scheme: Literal["CosineAnnealing"] = "CosineAnnealing"
    betas: tuple[Beta, Beta] = Field((0.9, 0.99), description="AdamW's [beta1, beta2], each in [0, 1)")
    epochs: int = Field(100, ge=1)
    lr_gamma: float = Field(0.5, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    eta_min: float = Field(
        1e-6, ge=0, validate_default=True, description="the cosine schedule's last learning rate, at most lr_initial"
    )
    pixel_criterion: PixelCriterion = "charbonnier"
    pixel_weight: float = Field(1.0, ge=0)
    perceptual: bool = False
    perceptual_criterion: PerceptualCriterion = "l1"
    perceptual_weight: float = Field(0.01, ge=0)
    perceptual_reduction: Reduction = "mean"
    edge: bool = False
    edge_criterion: PixelCriterion = "l2"
    edge_weight: float = Field(50.0, ge=0)
    edge_reduction: Reduction = "mean"
    frequency: bool = False
    frequency_criterion: PixelCriterion = "l2"
    frequency_weight: float = Field(0.01, ge=0)
    frequency_reduction: Reduction = "sum"
    enhance: bool = False
    enhance_criterion: PixelCriterion = "l1"
    enhance_weight: float = Field(0.8, ge=0)
    enhance_reduction: Reduction = "mean"
    anchor: str | None = Field(
        None,
        description="weights (a model name or checkpoint) whose detail a fine-tune keeps: adds anchor_weight x the "
        "Charbonnier distance between the local contrast (log minus its 9x9 mean) of the model's output and theirs, "
        "which leaves smooth tone changes free",
    )
    anchor_weight: float = Field(1.0, ge=0, description="the weight of the train.anchor term")
    tone_split: bool = Field(
        False,
        description="split the pixel loss into detail and tone: it compares the output after fitting its global gain "
        "and gamma to the reference (so it scores detail and colour only), and tone_weight x the distance between "
        "their means and spreads of log luminance trains the tone",
    )
    tone_weight: float = Field(0.25, ge=0, description="the weight of the train.tone_split tone term")
    trainable: list[str] | None = Field(
        None,
        description="the parts of the network a fine-tune trains, as parameter-name prefixes (e.g. middle_blks_enc, "
        "encoders.2); the others stay as loaded (default: all)",
    )
    grad_clip: float = Field(5.0, ge=0, description="max gradient norm (0 disables clipping)")
    seed: int = Field(0, ge=0, lt=2**32, description="seed of model init, data order and augmentation")
    amp: bool = Field(True, description="fp16 mixed precision when training on CUDA (ignored on CPU)")
    memory_format: Literal["auto", "channels_last", "contiguous"] = Field(
        "auto",
        description="layout of the model's weights and batches: 'auto' is channels_last on the CPU (its depth-wise "
        "and 1x1 convolutions run faster so; benchmarks/train_speed.py) and contiguous on CUDA; the losses agree",
    )
    val_every: int = Field(1, ge=1, description="validate every N epochs (and after the last)")
    val_max_images: int = Field(
        0, ge=0, description="validate on N images spread evenly over the set (whole scenes differ; 0 = all)"
    )
    val_max_memory: int | float | str | None = Field(
        None,
        description="the memory budget of validation, as darkir test --max-memory: the training process's (on CUDA "
        "the device's) peak while an image is restored, what it holds for training included (e.g. '12GB'; default: "
        "darkir test's default budget); images that do not fit whole are restored in tiles",
    )
    save_every_steps: int = Field(0, ge=0, description="also save the last checkpoint every N steps (0 = per epoch)")
    keep_every_steps: int = Field(
        0, ge=0, description="also keep a copy of the checkpoint every N steps as <save.path stem>_stepN (0 = never)"
    )
    log_dir: str | None = Field(None, description="JSONL + TensorBoard logs (default: beside save.path)")

    @field_validator("betas", mode="before")
    @classmethod
    def _two_betas(cls, value: Any) -> Any:
        """A list of other than two betas, named as such (not as a missing or extra tuple item)."""
        if isinstance(value, (list, tuple)) and len(value) != 2:
            raise ValueError("expected two numbers [beta1, beta2], each in [0, 1)")
        if isinstance(value, str):  # (0.9, 0.99) or a quoted list: YAML reads a text
            raise ValueError("expected two numbers [beta1, beta2] (a YAML list: in brackets, unquoted), each in [0, 1)")
        return value

    @field_validator("val_max_memory", mode="before")
    @classmethod
    def _memory_size(cls, value: Any) -> Any:
        """A size :func:`~darkir.memory_sizes.parse_memory` reads (kept as written, for the saved options)."""
        if value is not None:
            try:
                parse_memory(value, name="")
            except DarkIRError as error:
                raise ValueError(str(error)) from None
        return value

    @field_validator("eta_min")
    @classmethod
    def _eta_min_below_lr(cls, value: float, info: ValidationInfo) -> float:
        """A schedule that decays (or stays): ``eta_min`` at most ``lr_initial``."""
        initial = info.data.get("lr_initial")
        if initial is not None and value > initial:
            raise ValueError(f"eta_min {value:g} is above lr_initial {initial:g}; the cosine schedule decays to it")
        return value

    @field_validator("anchor_weight")
    @classmethod
    def _weight_with_anchor(cls, value: float, info: ValidationInfo) -> float:
        """A weight other than the default for the anchor term needs the anchor (else it would do nothing)."""
        if value != cls.model_fields["anchor_weight"].default and "anchor" in info.data and info.data["anchor"] is None:
            raise ValueError("is set but train.anchor is not: give the weights whose detail to keep")
        return value

    @field_validator("tone_weight")
    @classmethod
    def _weight_with_split(cls, value: float, info: ValidationInfo) -> float:
        """A weight other than the default for the tone term needs train.tone_split (else it would do nothing)."""
        if value != cls.model_fields["tone_weight"].default and not info.data.get("tone_split", True):
            raise ValueError("is set but train.tone_split is not: set train.tone_split to true")
        return value

    @field_validator(*LOSS_NAME_KEYS, mode="before")
    @classmethod
    def _lowercase_names(cls, value: Any) -> Any:
        """Criteria and reductions in any case (the official files write ``Charbonnier``)."""
        return value.lower() if isinstance(value, str) else value


class SaveOptions(_Section):
    """``save:``: checkpoint paths (``path``: weights to load / last checkpoint, ``best``: best-by-PSNR)."""

    path: str | None = None
    best: str | None = None
    new: str | None = None
    results_dir: str = Field("./images/results_test", description="where testing saves example triplets")

    @field_validator("path", "new")
    @classmethod
    def _a_file(cls, value: str | None) -> str | None:
        """A checkpoint path names a file: one ending in / (a folder) is refused."""
        if value is not None and value.endswith(("/", os.sep)):
            raise ValueError(f"ends in /, so it names a folder; name the checkpoint file in it, e.g. {value}last.pt")
        return value

    @field_validator("best")
    @classmethod
    def _best_in_a_folder(cls, value: str | None, info: ValidationInfo) -> str | None:
        """``best`` ending in / is a folder, as the older official files write it: the best checkpoint is named as
        ``path`` is, in it (``./models/bests/`` and ``./models/run.pt``: ``./models/bests/run.pt``)."""
        if value is None or not value.endswith(("/", os.sep)):
            return value
        path = info.data.get("path")
        if not path:
            raise ValueError(f"ends in /, so it names a folder; name the checkpoint file in it, e.g. {value}best.pt")
        return value + os.path.basename(path)


class WandbOptions(_Section):
    """``wandb:`` (official files; darkir logs to JSONL/TensorBoard instead, so these are ignored)."""

    init: bool = False
    project: str | None = None
    entity: str | None = None
    name: str | None = None
    save_code: bool = False
    resume: bool | str | None = None  # (wandb takes true/false or allow, must, never, auto)
    id: str | int | None = None


class OlderResumeOptions(_Section):
    """``resume_training:`` at the top of an older official file: ``resume_training`` is ``network.resume_training``;
    wandb's ``resume`` and ``id`` have no effect (darkir logs to JSONL and TensorBoard)."""

    resume_training: bool = False
    resume: bool | str | None = None  # (wandb takes true/false or allow, must, never, auto)
    id: str | int | None = None


class Options(_Section):
    """A whole options file."""

    device: DeviceOptions = Field(default_factory=DeviceOptions)
    datasets: DatasetsOptions = Field(default_factory=DatasetsOptions)
    network: NetworkOptions = Field(default_factory=NetworkOptions)
    train: TrainOptions = Field(default_factory=TrainOptions)
    save: SaveOptions = Field(default_factory=SaveOptions)
    wandb: WandbOptions = Field(default_factory=WandbOptions)
    resume_training: OlderResumeOptions | None = None
    Resize: bool = Field(False, description="official key, no effect: darkir tiles large images instead of halving")
    quali: list[str] | None = Field(None, description="official key (testing_unpaired.py's metrics), no effect")

    _source: str = PrivateAttr("<options>")

    @model_validator(mode="after")
    def _older_resume_section(self) -> Options:
        """An older official file's top-level ``resume_training.resume_training`` is ``network.resume_training``
        (where that is not set itself)."""
        older = self.resume_training
        if older is not None and older.resume_training and "resume_training" not in self.network.model_fields_set:
            self.network.resume_training = True
        return self

    @property
    def source(self) -> str:
        """The file these options were read from."""
        return self._source

    def get(self, dotted_key: str) -> Any:
        """The value at ``a.b.c``."""
        value: Any = self
        for part in dotted_key.split("."):
            value = getattr(value, part)
        return value

    def require_path(self, dotted_key: str, kind: Literal["file", "dir", "any"] = "any") -> Path:
        """The path at ``dotted_key``, which must be set and exist; else a ConfigError naming key and file."""
        value = self.get(dotted_key)
        if not value:
            raise ConfigError(f"{self.source}: {dotted_key} is not set")
        path = Path(value).expanduser()
        checks = {"file": path.is_file, "dir": path.is_dir, "any": path.exists}
        if not checks[kind]():
            noun = {"file": "file", "dir": "directory", "any": "path"}[kind]
            if path.exists():  # a folder where a file goes, or the other way round
                other = "a directory" if path.is_dir() else "not a directory"
                raise ConfigError(f"{self.source}: {dotted_key}: {value} is {other}; give a {noun}")
            where = "" if path.is_absolute() else f" (a relative path is read from the current folder{_current()})"
            raise ConfigError(f"{self.source}: {dotted_key}: {noun} not found: {value}{where}")
        return path

    def to_yaml(self) -> str:
        """The resolved options as YAML (saved beside checkpoints)."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def _current() -> str:
    """``, <the current folder>``; empty where it is gone (removed while the process ran in it)."""
    try:
        return f", {os.getcwd()}"
    except OSError:
        return ""


def load_options(path: str | os.PathLike[str], overrides: Iterable[str] = ()) -> Options:
    """Read, merge ``key=value`` overrides into, and validate an options YAML file."""
    if isinstance(overrides, str):  # its characters would be taken for overrides, one by one
        raise ConfigError(f"overrides: a list of 'key=value' strings, got one string; pass [{overrides!r}]")
    overrides = list(overrides)
    raw = read_options_file(path, overrides)  # (which refuses an override it cannot read)
    by_key = {key: item for item in overrides for key in _leaves(parse_overrides([item]))}
    return options_from_dict(raw, source=str(path), overrides=by_key)


def _leaves(nested: dict[str, Any], prefix: str = "") -> list[str]:
    """The dotted keys of the values ``nested`` sets (a section given as a mapping is merged key by key, so it sets
    only the keys it holds)."""
    keys = []
    for key, value in nested.items():
        dotted = f"{prefix}{key}"
        keys += _leaves(value, f"{dotted}.") if isinstance(value, dict) and value else [dotted]
    return keys


def options_from_dict(
    raw: dict[str, Any], source: str = "<options>", overrides: dict[str, str] | None = None
) -> Options:
    """Validate a nested dict as :class:`Options`; errors name ``source`` and the dotted key, and the override that
    set it where ``overrides`` (dotted key -> ``key=value`` as given) has one."""
    try:
        options = Options.model_validate(raw)
    except ValidationError as exc:
        problems = [_from_override(_describe(err), err, overrides or {}) for err in exc.errors()]
        raise ConfigError(f"{source}: " + some_of(problems, 12, "; ")) from None
    problems = _network_problems(options.network)
    if problems:
        raise ConfigError(f"{source}: " + "; ".join(problems))
    options._source = source
    _warn_ignored(options)
    return options


#: The channels of the images darkir reads and writes (RGB).
IMAGE_CHANNELS = 3


def _network_problems(network: _NetworkBase) -> list[str]:
    """``network.key: why`` for each setting that passes its own check but cannot make a model darkir runs: block
    lists of different lengths, and channels other than the images' (checked before any work)."""
    values = network.config_values()
    values.update({name: tuple(values[name]) for name in SEQUENCE_FIELDS})
    problems = [f"network.{network_key(name)}: {why}" for name, why in config_problems(values)]
    if values["img_channel"] != IMAGE_CHANNELS:
        problems.append(
            f"network.img_channels: must be {IMAGE_CHANNELS}, got {values['img_channel']} (darkir reads, trains on and "
            "writes RGB images)"
        )
    return problems


#: Keys of the official/seed files that load but change nothing in darkir (with why).
IGNORED_KEYS = {
    "Resize": "darkir tiles large images instead of halving them",
    "quali": "test-unpaired reports NIQE, brightness and noise; MUSIQ, NRQM and BRISQUE have no offline models",
    "train.lr_gamma": "only the CosineAnnealing schedule exists",
    "train.frequency": "the official code never added this loss (it stored it under a misspelt name), so official "
    "runs trained without it; darkir does too",
    "save.new": "darkir does not use it",
    "datasets.train.verbose": "darkir shows a progress bar unless told to be quiet",
    "datasets.val.batch_size_test": "validation runs one image at a time",
    "device.cuda": "darkir picks the device itself, or takes the one it is given",
    "device.gpus": "darkir picks the device itself (torchrun for several GPUs)",
    "device.ids": "darkir picks the device itself (CUDA_VISIBLE_DEVICES selects GPUs)",
    "wandb.init": "darkir logs to JSONL and TensorBoard",
}
_warned: set[str] = set()


def _warn_ignored(options: Options) -> None:
    """Warn once per key about official keys set to a non-default value that have no effect in darkir."""
    set_keys = []
    for dotted, why in IGNORED_KEYS.items():
        *sections, name = dotted.split(".")
        section: BaseModel = options
        for part in sections:
            section = getattr(section, part)
        default = type(section).model_fields[name].default
        if name in section.model_fields_set and getattr(section, name) != default and dotted not in _warned:
            set_keys.append(f"{dotted} ({why})")
            _warned.add(dotted)
    if set_keys:
        message = f"{options.source}: these options have no effect in darkir: {'; '.join(set_keys)}"
        warn(message)


def _from_override(problem: str, error: Any, overrides: dict[str, str]) -> str:
    """``problem`` (pydantic's ``error``), naming the override of ``overrides`` that set its key (or a section
    holding it): the options file does not hold that value."""
    key = ".".join(str(part) for part in error["loc"])
    for overridden, item in overrides.items():
        if key == overridden or key.startswith(f"{overridden}."):
            return f"{problem}, set on the command line ({printable(item, one_line=True)})"
    return problem


def _describe(error: Any) -> str:
    """One readable line for one pydantic error, with a did-you-mean hint for unknown keys."""
    loc = [str(p) for p in error["loc"]]
    key = ".".join(loc)
    if error["type"] == "extra_forbidden":
        section: type[BaseModel] = Options
        for part in loc[:-1]:
            annotation = section.model_fields[part].annotation
            models = [a for a in get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
            annotation = models[0] if models else annotation
            if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                break
            section = annotation
        close = difflib.get_close_matches(loc[-1], list(section.model_fields), n=1)
        hint = f" (did you mean '{'.'.join(loc[:-1] + close)}'?)" if close else ""
        return f"unknown key '{key}'{hint}"
    message = str(error["ctx"]["error"]) if error["type"] == "value_error" else error["msg"]
    return f"{key}: {message} (got {short_repr(error.get('input'))})"
