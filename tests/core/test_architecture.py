"""Package structure: no import cycles inside peftlab; requirements come from package metadata only."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import peftlab

ROOT = Path(peftlab.__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, name: str, modules: set[str]) -> set[str]:
    """Every peftlab module ``name`` imports, at module level or inside functions (not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("peftlab"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = name if is_pkg else name.rsplit(".", 1)[0]
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            if mod.startswith("peftlab"):
                for a in node.names:  # `from pkg import sub` imports the submodule; `from mod import x`, mod
                    out.add(f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod)
    return out


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        graph[name] = {m for m in _imports(path, name, set(files)) if m in files and m != name}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, or None. Importing ``a.b`` also runs ``a/__init__``, but a package importing its
    own submodules is not a cycle by itself, so only explicit edges count."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycle_inside_peftlab():
    cycle = _cycle(_graph())
    assert cycle is None, "import cycle: " + " → ".join(cycle)


def test_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


#: the layers below the experiments and the course: a method, its config, layers and file format, the 4-bit codes
CORE = ("peftlab.core", "peftlab.methods", "peftlab.quant")


def _is_core(module: str) -> bool:
    return module == "peftlab" or any(module == c or module.startswith(c + ".") for c in CORE)


def test_core_imports_nothing_above_it():
    """``import peftlab`` and every core module load no experiment (train, compare, qr_adaptor), analysis or course
    module (checks, instructor, datagen, cli, env, device, profile, data, models, standins)."""
    graph = _graph()
    core = [m for m in graph if _is_core(m)]
    assert {"peftlab", "peftlab.core.tuner", "peftlab.methods.lora", "peftlab.quant"} <= set(core)
    bad = {m: sorted(d for d in graph[m] if not _is_core(d)) for m in core}
    assert {m: d for m, d in bad.items() if d} == {}


def test_layer_rule_sees_a_violation():
    graph = {"peftlab.core.tuner": {"peftlab.compare"}, "peftlab.compare": {"peftlab.core.tuner"}}
    assert [d for m in graph if _is_core(m) for d in graph[m] if not _is_core(d)] == ["peftlab.compare"]


def test_only_datagen_imports_datagen():
    graph = _graph()
    users = sorted(m for m, deps in graph.items()
                   if not m.startswith("peftlab.datagen") and any(d.startswith("peftlab.datagen") for d in deps))
    assert users == [], f"modules importing the data generator at run time: {users}"


def test_requirements_come_from_metadata_only():
    from peftlab import env

    source = Path(env.__file__).read_text(encoding="utf-8")
    assert "_FALLBACK" not in source and "torch>=" not in source
    names = {r.name for r in env.requirements()}
    assert {"torch", "transformers", "peft"} <= names


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def test_peft_format_imports_no_method_and_not_interop():
    """The file format is core: the methods import it to register their codecs, never the other way round."""
    reached = _reachable(_graph(), "peftlab.core.peft_format")
    bad = sorted(m for m in reached if m.startswith("peftlab.methods") or m == "peftlab.core.interop")
    assert bad == [], f"peftlab.core.peft_format imports (directly or through others) {bad}"


def test_interop_imports_no_method_module():
    """interop is the generic driver: it imports the methods package (so every codec is registered) and no method
    module; no codec and no method class lives in it."""
    files = {_module_name(p) for p in ROOT.rglob("*.py")}
    path = ROOT / "core" / "interop.py"
    methods = sorted(m for m in _imports(path, "peftlab.core.interop", files) if m.startswith("peftlab.methods"))
    assert methods == ["peftlab.methods"]
    from peftlab.core.tuner import registry

    source = path.read_text(encoding="utf-8")
    for spec in registry().values():
        for cls in (spec.config_cls, *spec.layers, *([spec.wrapper] if spec.model_level else [])):
            assert re.search(rf"\b{cls.__name__}\b", source) is None, f"interop.py names {cls.__name__}"


def test_every_peft_codec_is_registered_beside_its_method():
    from peftlab.core.peft_format import codecs, same_file_methods, wrapper_codec_for_file
    from peftlab.core.tuner import registry

    methods = registry()
    shared = {s.method: s for method in codecs() for s in same_file_methods(method)}
    for method, codec in codecs().items():
        home = methods[method].config_cls.__module__
        assert codec.to_peft.__module__ == home and codec.accepts.__module__ == home, method
        owners = [method, *(s.method for s in same_file_methods(method))]
        assert list(codec.tensor_keys) == [cls for m in owners for cls in methods[m].layers], method
    for method, same in shared.items():
        assert same.claims.__module__ == methods[method].config_cls.__module__, method
    # every layer method with a peft counterpart has a file format; the Houlsby adapter has none in peft; of the
    # model-level methods, prompt tuning has a wrapper codec in its own file (prefix tuning none yet)
    assert sorted(set(methods) - set(codecs()) - set(shared)) == ["houlsby", "prefix_tuning", "prompt_tuning"]
    prompt = wrapper_codec_for_file({"peft_type": "PROMPT_TUNING"})
    assert prompt is not None and prompt.wrapper is methods["prompt_tuning"].wrapper
    home = methods["prompt_tuning"].config_cls.__module__
    assert prompt.save.__module__ == home and prompt.load.__module__ == home
    assert shared.keys() == {"qlora"} and shared["qlora"].codec == "lora"


def test_compare_recipes_live_beside_their_methods():
    """``peftlab compare`` builds its table from the registry: it imports no method module, each recipe's build
    function comes from its method's own file, and ``peftlab.core.recipe`` (which the methods import) imports neither
    a method nor compare."""
    from peftlab.core.tuner import registry

    homes = {spec.config_cls.__module__ for spec in registry().values()}  # peftlab.methods.lora, …
    files = {_module_name(p) for p in ROOT.rglob("*.py")}
    package = sorted((ROOT / "compare").glob("*.py"))
    assert {p.stem for p in package} >= {"__init__", "methods", "run"}
    compare = {p.name: sorted(m for m in _imports(p, _module_name(p), files) if m in homes) for p in package}
    assert {f: ms for f, ms in compare.items() if ms} == {}, "peftlab/compare/ imports a method module"
    # (peftlab.methods.fast's generic use_fast is fine)
    reached = _reachable(_graph(), "peftlab.core.recipe")
    assert sorted(m for m in reached if m.startswith(("peftlab.methods", "peftlab.compare"))) == []

    for name, spec in registry().items():
        assert spec.recipe is not None, f"method {name!r} declares no recipe for peftlab compare"
        for recipe in spec.recipes.values():
            assert recipe.build.__module__ == spec.config_cls.__module__, name
