"""The package's import graph, read from the source with `ast` (nothing is imported, so nothing is hidden).

Imports inside functions count: a deferred import is still a dependency, and deferring one only hides a cycle.
The rules (docs/CONTRIBUTING.md): no cycles; lower layers never import upper ones; no private name (`_x`) of one
gptlab module used in another. A failure prints what it found, e.g. the strongly connected components.
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "gptlab"
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py"))

# Layer of each module: a module may import its own layer or a lower one, never a higher one.
LAYERS = {
    # 0: settings, hardware and files (no other gptlab module)
    "config": 0,  # GPTConfig, TrainConfig and the one presets table
    "device": 0,  # device, seeding, bf16, eval_mode
    "datasets": 0,  # the dataset registry and checked fetch (the tokenizers fetch GPT-2's ranks through it)
    "files": 0,  # the folder writer lock shared by checkpoints and token shards
    # 1: a model and what runs on it (no batches, no checkpoints)
    "tokenizers": 1,
    "model": 1,
    "generation": 1,  # sampling, beam search
    "__init__": 1,  # re-exports GPT and GPTConfig, __version__
    "attention": 1,  # captures a model's attention maps (inference, like generation)
    "metrics": 1,  # perplexity, BLEU/chrF/ROUGE, diversity: scores of a model's outputs
    "seq2seq": 1,  # the encoder-decoder: a model
    "rnn": 1,  # the LSTM baseline: a model
    # 2: token windows, batches, shards
    "data": 2,
    # 3: trained weights in and out
    "checkpoint": 3,
    "lora": 3,  # LoRALinear and its adapter files (written by checkpoint)
    "pretrained": 3,  # GPT-2 weights from Hugging Face, and export
    # 4: the training loop
    "training": 4,
    "distributed": 4,  # DDP set-up and collectives for the loop
    # 5: applications of a trained model
    "finetune": 5,
    "tasks": 5,
    "scaling": 5,  # the scaling-law fit of lesson 15
    # 6: the course, pictures, exercise checks, the command line
    "course": 6,
    "viz": 6,
    "diagrams": 6,
    "checks": 6,
    "cli": 6,
    "__main__": 6,
}


def _target(node: ast.ImportFrom | ast.Import, alias: ast.alias) -> str | None:
    """The gptlab module an import names (`__init__` for `from gptlab import GPT`), or None for another package."""
    if isinstance(node, ast.Import):
        parts = alias.name.split(".")
        if parts[0] != "gptlab":
            return None
        return parts[1] if len(parts) > 1 else "__init__"
    if node.level:  # relative: from . import x / from .x import y
        base = node.module
    elif node.module and (node.module == "gptlab" or node.module.startswith("gptlab.")):
        base = node.module[len("gptlab.") :] if node.module != "gptlab" else None
    else:
        return None
    if base:
        return base.split(".")[0]
    return alias.name if alias.name in MODULES else "__init__"


def _module_imports(m: str, source: str) -> tuple[set[str], list[str]]:
    """The gptlab modules that module `m`'s source imports (anywhere in it), and the private names it uses."""
    tree = ast.parse(source, filename=f"gptlab/{m}.py")
    targets: set[str] = set()
    private: list[str] = []
    foreign: dict[str, str] = {}  # local name bound to something another gptlab module owns -> that module
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        for alias in node.names:
            target = _target(node, alias)
            if target is None or target == m:
                continue
            targets.add(target)
            if isinstance(node, ast.ImportFrom) and re.match(r"_[^_]", alias.name):
                private.append(f"gptlab/{m}.py:{node.lineno} imports {target}.{alias.name}")
            foreign[alias.asname or alias.name.split(".")[0]] = target
    for node in ast.walk(tree):  # GPT._init_weights(...), attention._window_bounds(...)
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in foreign
            and re.match(r"_[^_]", node.attr)
        ):
            private.append(f"gptlab/{m}.py:{node.lineno} uses {node.value.id}.{node.attr} ({foreign[node.value.id]})")
    return targets, private


@functools.cache
def _scan() -> tuple[dict[str, set[str]], list[str]]:
    """Every module's gptlab imports (module level and inside functions), and every private name used across."""
    graph: dict[str, set[str]] = {}
    private: list[str] = []
    for m in MODULES:
        graph[m], found = _module_imports(m, (PACKAGE / f"{m}.py").read_text())
        private += found
    return graph, private


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in MODULES:
        if v not in index:
            visit(v)
    return sorted(found)


def test_the_scanner_sees_imports_inside_functions_and_private_names():
    """The scan finds what it must, so that an empty answer below means something."""
    source = (
        "from gptlab import GPT\n"
        "import gptlab.data as d\n"
        "def f():\n"
        "    from gptlab.training import train, _private\n"
        "    from . import checkpoint\n"
        "    return GPT._init_weights, d._cache\n"
    )
    targets, private = _module_imports("model", source)
    assert targets == {"__init__", "data", "training", "checkpoint"}
    assert [p.split(" ", 1)[1] for p in private] == [
        "imports training._private",
        "uses GPT._init_weights (__init__)",
        "uses d._cache (data)",
    ]
    graph, _ = _scan()
    assert {"config", "model"} <= graph["__init__"] and "cli" in graph["__main__"]


def test_every_module_has_a_layer():
    missing = sorted(set(MODULES) - set(LAYERS))
    assert not missing, f"place these modules in tests/test_imports.py LAYERS: {missing}"
    assert not sorted(set(LAYERS) - set(MODULES)), "LAYERS names a module that no longer exists"


def test_no_import_cycles_counting_imports_inside_functions():
    graph, _ = _scan()
    cycles = _cycles(graph)
    print("strongly connected components:", cycles)
    assert cycles == [], f"import cycles (imports inside functions included): {cycles}"


def test_no_module_imports_a_higher_layer():
    graph, _ = _scan()
    upward = sorted(
        f"{m} (layer {LAYERS[m]}) imports {t} (layer {LAYERS[t]})"
        for m, targets in graph.items()
        for t in targets
        if LAYERS[t] > LAYERS[m]
    )
    print("\n".join(upward))
    assert upward == [], "lower layers import upper ones:\n" + "\n".join(upward)


def test_no_private_name_crosses_modules():
    _, private = _scan()
    print("\n".join(private))
    assert private == [], "private names used across gptlab modules:\n" + "\n".join(private)


def test_one_backward_call_in_the_training_code():
    """Every training loop is the package's one loop: one `.backward(` call in gptlab (the scaling-law fit aside)."""
    calls = [
        f"gptlab/{m}.py:{node.lineno}"
        for m in MODULES
        if m != "scaling"
        for node in ast.walk(ast.parse((PACKAGE / f"{m}.py").read_text()))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "backward"
    ]
    print("\n".join(calls))
    assert len(calls) == 1, f"{len(calls)} backward calls: {calls}"


def test_the_package_loads_its_names_lazily():
    """`import gptlab` loads no submodule (so `gptlab --help` needs no PyTorch); GPT, GPTConfig and every
    submodule still arrive on first use, and `__init__` knows every module there is."""
    import subprocess
    import sys

    code = (
        "import sys, gptlab\n"
        "print(sorted(m for m in sys.modules if m.startswith('gptlab.') or m.split('.')[0] == 'torch'))\n"
        "from gptlab import GPT, GPTConfig, viz\n"
        "import gptlab.model, gptlab.config\n"
        "assert GPT is gptlab.model.GPT and GPTConfig is gptlab.config.GPTConfig\n"
        "assert gptlab.metrics.__name__ == 'gptlab.metrics' and viz is gptlab.viz\n"
        "try:\n"
        "    gptlab.no_such_name\n"
        "except AttributeError as e:\n"
        "    print('error:', e)\n"
    )
    env = {"PYTHONPATH": str(PACKAGE.parent), "PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    first, last = r.stdout.strip().splitlines()
    assert first == "[]", f"importing gptlab loaded {first}"
    assert last == "error: module 'gptlab' has no attribute 'no_such_name'"
    import gptlab

    assert set(gptlab._SUBMODULES) == set(MODULES) - {"__init__", "__main__"}, "list the new module in gptlab/__init__.py"
