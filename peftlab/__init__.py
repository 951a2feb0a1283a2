"""peftlab: from-scratch reference implementations of parameter-efficient fine-tuning methods.

Each method lives in its own module and is checked against Hugging Face ``peft``::

    import peftlab
    model = peftlab.apply_lora(model, r=8, alpha=16, target_modules=["query", "value"])
    print(peftlab.count_parameters(model))
"""

from peftlab._quiet import quiet_third_party
from peftlab.inject import ParameterCount, count_parameters, find_targets
from peftlab.interop import load_peft_adapter, save_peft_adapter
from peftlab.lora import LoRAConfig, LoRALinear, apply_lora, merge_lora, unmerge_lora

quiet_third_party()  # before peft / bitsandbytes are imported anywhere

__version__ = "0.1.0"

__all__ = [
    "LoRAConfig",
    "LoRALinear",
    "ParameterCount",
    "apply_lora",
    "count_parameters",
    "find_targets",
    "load_peft_adapter",
    "merge_lora",
    "save_peft_adapter",
    "unmerge_lora",
]
