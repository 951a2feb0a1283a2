"""The core: how a config becomes adapter layers, and peft's file format.

``config`` (``AdapterConfig``, the base of every method's config) · ``argcheck`` (the argument checks every
config and function uses) · ``layer`` (``AdapterLayer``) · ``targets`` (which modules a config adapts) ·
``tuner`` (the method registry, ``inject`` and the model-level operations) · ``recipe`` (how ``peftlab compare``
builds a registered method) · ``peft_format`` (peft's two files and the codec registry) · ``interop`` (save, load
and copy adapters through the codecs) · ``fileio`` (atomic writes).

The methods (``peftlab/methods/``) and the 4-bit codes (``peftlab/quant/``) build on it. Nothing here imports
the experiments (``train``, ``compare``, ``qr_adaptor``), the analyses or the course tooling (checks, instructor,
datagen, cli, env, device, profile, data, models): ``tests/core/test_architecture.py`` checks it.
"""
