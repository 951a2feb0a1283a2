"""peftlab.core.argcheck: the one place argument checks are worded, with bounds named by keyword."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

import peftlab
from peftlab.core import argcheck

ROOT = Path(peftlab.__file__).resolve().parent


@pytest.mark.parametrize("value", [1, 7, 2**40])
def test_positive_int_accepts(value):
    assert argcheck.positive_int("r", value) == value


@pytest.mark.parametrize(("value", "error"), [(0, ValueError), (-3, ValueError), (True, TypeError),
                                              (2.0, TypeError), ("4", TypeError), (None, TypeError)])
def test_positive_int_refuses(value, error):
    with pytest.raises(error, match=r"^r"):
        argcheck.positive_int("r", value, "an int ≥ 1 (the rank)")


def test_positive_int_names_what_is_allowed():
    with pytest.raises(ValueError, match=re.escape("r=0 is not allowed: expected an int ≥ 1 (the rank)")):
        argcheck.positive_int("r", 0, "an int ≥ 1 (the rank)")


def test_number_bounds_by_keyword():
    assert argcheck.number("p", 0.0, at_least=0.0, below=1.0, allowed="[0, 1)") == 0.0
    with pytest.raises(ValueError, match=r"p=1\.0 is not allowed: expected \[0, 1\)"):
        argcheck.number("p", 1.0, at_least=0.0, below=1.0, allowed="[0, 1)")
    with pytest.raises(ValueError):
        argcheck.number("alpha", 0, above=0, allowed="a positive number")
    assert argcheck.number("alpha", 1e-9, above=0, allowed="a positive number") == 1e-9
    assert argcheck.number("s", -5, allowed="a finite number") == -5


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, True, "1", None])
def test_number_refuses_what_is_not_a_finite_real(value):
    with pytest.raises(ValueError, match=r"^x="):
        argcheck.number("x", value, allowed="a finite number")


def test_flag_one_of_name_list():
    assert argcheck.flag("use_idwt", False) is False
    for bad in (0, 1, "True", None):
        with pytest.raises(TypeError, match="use_idwt must be True or False"):
            argcheck.flag("use_idwt", bad)
    assert argcheck.one_of("init", "zero", ("random", "zero")) == "zero"
    with pytest.raises(ValueError, match=r"init='ones' is not allowed: expected one of \('random', 'zero'\) or None"):
        argcheck.one_of("init", "ones", ("random", "zero"), note=" or None")
    with pytest.raises(ValueError):
        argcheck.one_of("init", ["zero"], ("random", "zero"))  # unhashable, still a clear ValueError
    assert argcheck.name_list("modules_to_save", ("classifier",)) == ["classifier"]
    with pytest.raises(TypeError, match="modules_to_save must be a list of module names"):
        argcheck.name_list("modules_to_save", "classifier")


def test_configs_use_the_shared_checks():
    """The same wording in every method (a config built with a bad value names it the same way)."""
    from peftlab.methods.ia3 import IA3Config
    from peftlab.methods.lora import LoRAConfig
    from peftlab.methods.prompts import PromptTuningConfig
    from peftlab.methods.vblora import VBLoRAConfig
    from peftlab.methods.waveft import WaveFTConfig

    for make, field in ((lambda: LoRAConfig(r=0), "r"), (lambda: VBLoRAConfig(r=0), "r"),
                        (lambda: WaveFTConfig(n_frequency=0), "n_frequency"),
                        (lambda: PromptTuningConfig(num_virtual_tokens=0), "num_virtual_tokens")):
        with pytest.raises(ValueError, match=rf"^{field}=0 is not allowed: expected an int ≥ 1"):
            make()
    for make, field in ((lambda: LoRAConfig(use_rslora=1), "use_rslora"),
                        (lambda: IA3Config(init_ia3_weights="yes"), "init_ia3_weights"),
                        (lambda: WaveFTConfig(use_idwt=0), "use_idwt")):
        with pytest.raises(TypeError, match=rf"^{field} must be True or False"):
            make()
    for make in (lambda: LoRAConfig(dropout=1.0), lambda: VBLoRAConfig(vblora_dropout=1.0)):
        with pytest.raises(ValueError, match=r"dropout=1\.0 is not allowed"):
            make()


def test_no_module_words_these_checks_itself():
    """A bool, positive-int or module-list check written out again elsewhere would drift from this wording."""
    patterns = ("must be True or False", "must be a list of module names")
    offenders = [f"{p.relative_to(ROOT)}: {pat}" for p in ROOT.rglob("*.py") if p.name != "argcheck.py"
                 for pat in patterns if pat in p.read_text(encoding="utf-8")]
    assert not offenders, offenders
    ints = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py") if p.name != "argcheck.py"
            and "is not allowed: expected an int ≥ 1\")" in p.read_text(encoding="utf-8")]
    assert not ints, ints


def test_argcheck_is_a_leaf():
    source = (ROOT / "core" / "argcheck.py").read_text(encoding="utf-8")
    assert not re.search(r"^\s*(from|import) peftlab", source, re.M)
