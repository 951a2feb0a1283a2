"""The base every method's config extends: :class:`AdapterConfig`.

A method's config is a dataclass that subclasses :class:`AdapterConfig` and inherits from it

* the **method contract**: the class attribute ``method`` names the method, the name it registers under
  (:func:`peftlab.core.tuner.register_method` refuses a config class whose ``method`` differs, and
  :func:`peftlab.core.tuner.inject` refuses a config whose class no method registered — the base itself included);
* the **shared fields' checks**: ``target_modules`` (a list of name suffixes, or one regex string) and
  ``modules_to_save`` (a list of module names), checked by :func:`peftlab.core.targets.check_target_fields` and
  returned as a fresh list / string. A config that wraps the whole model instead of target layers (prompt and
  prefix tuning) has no ``target_modules``; only its ``modules_to_save`` is checked;
* :meth:`AdapterConfig.to_dict`: every field, plus ``"method"``.

Each config declares its own fields, ``target_modules`` and ``modules_to_save`` included, at the place they
have always had (so the order of ``dataclasses.fields``, the repr and positional construction stay as they
were); :func:`names_field` gives such a list-valued field its default. Every default lives in the config's
field: the method's layer and ``apply_*`` signatures read it from there (``_D = XConfig()`` in each method file).

A method's ``__post_init__`` checks its own fields, then calls ``super().__post_init__()`` for the shared ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from peftlab.core import argcheck
from peftlab.core.targets import check_target_fields

__all__ = ["AdapterConfig", "names_field"]


def names_field(*names: str) -> Any:
    """A dataclass field whose default is a fresh list of ``names`` (``target_modules``, ``modules_to_save``)."""
    return field(default_factory=lambda: list(names))


@dataclass
class AdapterConfig:
    """What every method's config shares: the ``method`` name, the checks of ``target_modules`` /
    ``modules_to_save``, and :meth:`to_dict`. Not a method itself (it is never registered)."""

    #: the registered name of the config's method (``"lora"``, ``"vblora"``, …); set by each method's config
    method: ClassVar[str | None] = None

    def __post_init__(self) -> None:
        names = {f.name for f in fields(self)}
        if "target_modules" in names:
            self.target_modules, self.modules_to_save = check_target_fields(self.target_modules, self.modules_to_save)
        elif "modules_to_save" in names:
            self.modules_to_save = argcheck.name_list("modules_to_save", self.modules_to_save)

    def to_dict(self) -> dict:
        """Every field by name, in the dataclass's order, plus ``"method"``."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        return {**out, "method": self.method}
