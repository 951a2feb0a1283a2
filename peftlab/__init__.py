"""peftlab: from-scratch reference implementations of parameter-efficient fine-tuning methods.

Each method lives in one file under :mod:`peftlab.methods`, on a shared core (:mod:`peftlab.core.layer`,
:mod:`peftlab.core.tuner`), and is checked against Hugging Face ``peft``::

    import peftlab
    model = peftlab.apply_lora(model, r=8, alpha=16, target_modules=["query", "value"])
    print(peftlab.count_parameters(model))
    peftlab.merge_and_unload(model)        # plain nn.Linear layers with merged weights

The model-level operations are named after peft's ``PeftModel`` methods.
"""

from peftlab.core._quiet import quiet_third_party

quiet_third_party()  # before peft / bitsandbytes are imported anywhere

from peftlab.core.interop import copy_from_peft, load_adapter_state, load_peft_adapter, save_peft_adapter  # noqa: E402
from peftlab.core.layer import AdapterLayer  # noqa: E402
from peftlab.core.targets import ParameterCount, count_parameters, find_targets  # noqa: E402
from peftlab.core.tuner import (  # noqa: E402
    active_adapters,
    adapter_layers,
    delete_adapter,
    disable_adapter,
    inject,
    merge_adapter,
    merge_and_unload,
    registry,
    set_adapter,
    unload,
    unmerge_adapter,
)
from peftlab.methods.adapters import HoulsbyConfig, HoulsbyLinear, apply_houlsby_adapter  # noqa: E402
from peftlab.methods.dora import DoRAConfig, DoRAEmbedding, DoRALinear, apply_dora  # noqa: E402
from peftlab.methods.ia3 import IA3Config, IA3Linear, apply_ia3  # noqa: E402
from peftlab.methods.lora import (  # noqa: E402
    LoRAConfig,
    LoRAEmbedding,
    LoRALinear,
    apply_lora,
)
from peftlab.methods.prompts import (  # noqa: E402
    PrefixTuningConfig,
    PrefixTuningModel,
    PromptTuningConfig,
    PromptTuningModel,
    apply_prefix_tuning,
    apply_prompt_tuning,
)
from peftlab.methods.qlora import QLoRAConfig, QLoRALinear, QuantLinear, apply_qlora  # noqa: E402
from peftlab.methods.vblora import VBLoRAConfig, VBLoRALinear, apply_vblora  # noqa: E402
from peftlab.methods.waveft import WaveFTConfig, WaveFTLinear, apply_waveft  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "AdapterLayer",
    "DoRAConfig",
    "HoulsbyConfig",
    "HoulsbyLinear",
    "DoRAEmbedding",
    "DoRALinear",
    "IA3Config",
    "IA3Linear",
    "LoRAConfig",
    "LoRAEmbedding",
    "LoRALinear",
    "ParameterCount",
    "PrefixTuningConfig",
    "PrefixTuningModel",
    "PromptTuningConfig",
    "PromptTuningModel",
    "QLoRAConfig",
    "QLoRALinear",
    "QuantLinear",
    "VBLoRAConfig",
    "VBLoRALinear",
    "WaveFTConfig",
    "WaveFTLinear",
    "active_adapters",
    "adapter_layers",
    "apply_dora",
    "apply_houlsby_adapter",
    "apply_ia3",
    "apply_lora",
    "apply_prefix_tuning",
    "apply_prompt_tuning",
    "apply_qlora",
    "apply_vblora",
    "apply_waveft",
    "copy_from_peft",
    "count_parameters",
    "delete_adapter",
    "disable_adapter",
    "find_targets",
    "inject",
    "load_adapter_state",
    "load_peft_adapter",
    "merge_adapter",
    "merge_and_unload",
    "registry",
    "save_peft_adapter",
    "set_adapter",
    "unload",
    "unmerge_adapter",
]
