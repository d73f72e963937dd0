"""DarkIR and DarkIR+CSF for spandrel, the model loader of chaiNNer, ComfyUI and InvokeAI.

Importing this module registers the ``DarkIR`` architecture in spandrel's main registry (once), so that::

    import darkir.integrations.spandrel  # noqa: F401
    import spandrel

    model = spandrel.ModelLoader().load_from_file("darkir-csf-w32-synth.safetensors")
    restored = model(image)  # (1, 3, H, W) float in [0, 1] -> same shape, clamped to [0, 1]

loads darkir's shipped weights and official DarkIR checkpoints (any layout spandrel unwraps: ``params``,
``state_dict``, ``model_state_dict``, a ``module.`` prefix) with the width, block counts, extra depth-wise conv and
CSF read off the tensors, as ``darkir`` does. Registering on import is deliberate: it is what the spandrel
ecosystem's plugins expect; :func:`install` does the same explicitly and is idempotent.
"""

from __future__ import annotations

try:
    from spandrel import (
        MAIN_REGISTRY,
        Architecture,
        ArchRegistry,
        ArchSupport,
        ImageModelDescriptor,
        ModelTiling,
        StateDict,
    )
    from spandrel.util import KeyCondition
except ImportError as exc:  # spandrel itself, or its torchvision built for another torch
    raise ImportError(
        f"darkir.integrations.spandrel needs spandrel ({exc}); install it with pip install 'darkir[spandrel]' in an "
        "environment where torchvision matches torch (see scripts/setup_spandrel_env.sh)"
    ) from exc

from darkir.models import DarkIR, ModelConfig, create_model
from darkir.models.state_dict import infer_config, load_state_dict_strict

ARCH_ID = "DarkIR"


class DarkIRArch(Architecture[DarkIR]):
    """DarkIR (CVPR 2025) with or without Cross-Scale Fusion, detected from the reference parameter names."""

    def __init__(self) -> None:
        super().__init__(
            id=ARCH_ID,
            name="DarkIR",
            detect=KeyCondition.has_all(
                "intro.weight",
                "ending.weight",
                "side_out.weight",
                "downs.0.weight",
                "ups.0.0.weight",
                "encoders.0.modules_list.0.freq.process1.0.weight",
                "encoders.0.modules_list.0.branches.0.branch.0.weight",
                "decoders.0.modules_list.0.branches.0.branch.0.weight",
                "decoders.0.modules_list.0.conv4.weight",
            ),
        )

    def load(self, state_dict: StateDict) -> ImageModelDescriptor[DarkIR]:
        config = ModelConfig.from_kwargs(infer_config(state_dict))
        model = create_model(config)
        load_state_dict_strict(model, state_dict, source="spandrel state_dict")
        channels = config.img_channel
        return ImageModelDescriptor(
            model,
            state_dict,
            architecture=self,
            purpose="Restoration",
            tags=[f"{config.width}nf", *(["CSF"] if config.use_csf else [])],
            # fp16 weights overflow in the frequency MLP (a sum over the whole image); bfloat16 has the range.
            supports_half=False,
            supports_bfloat16=True,
            scale=1,
            input_channels=channels,
            output_channels=channels,
            # The frequency branch sees the whole image: tiles change the result.
            tiling=ModelTiling.DISCOURAGED,
        )


def install(registry: ArchRegistry = MAIN_REGISTRY) -> None:
    """Register :class:`DarkIRArch` in ``registry`` (spandrel's main one by default) unless it is there."""
    if ARCH_ID not in registry:
        registry.add(ArchSupport.from_architecture(DarkIRArch()))


install()
