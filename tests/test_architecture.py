"""The layout's promises, checked on the source: no import circles (function-local imports count:
a circle hidden inside a function is still a circle) and no module past ~400 lines."""

import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "qsal_jax")
MAX_LINES = 420


def _modules() -> dict[str, str]:
    """dotted module name → path, for every module of the package."""
    out = {}
    for folder, _, files in os.walk(PACKAGE):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(folder, f)
                rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                out[rel[: -len(".__init__")] if rel.endswith(".__init__") else rel] = path
    return out


def _imports(name: str, path: str, modules: dict) -> set[str]:
    """The package modules ``name`` imports anywhere in its body. ``from pkg import sub`` is an
    import of ``pkg.sub`` when ``sub`` is a module, else of ``pkg`` itself."""
    is_package = path.endswith("__init__.py")
    out = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in modules}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for a in node.names:
                sub = f"{target}.{a.name}"
                if sub in modules:
                    out.add(sub)
                elif target in modules:
                    out.add(target)
    out.discard(name)
    return out


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def _graph():
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        deps = _imports(name, path, modules)
        # A package importing its own submodules (to re-export them) is how packages are made,
        # and a submodule importing a sibling goes through the package: not a circle of concepts.
        if path.endswith("__init__.py"):
            deps = {d for d in deps if not d.startswith(name + ".")}
        graph[name] = deps
    return graph


def test_the_cycle_finder_finds_a_planted_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_import_scan_sees_function_local_imports():
    graph = _graph()
    assert "qsal_jax.simulation" in graph["qsal_jax.experiments.validation"]  # inside a function


def test_no_import_circles():
    assert _cycles(_graph()) == []


def test_no_module_is_too_long():
    long = {name: n for name, path in _modules().items() if (n := sum(1 for _ in open(path))) > MAX_LINES}
    assert not long, long


# The house's floors, lowest first: a module imports its own floor or lower ones only.
FLOORS = ("checks", "imports", "solvers", "simulation", "models", "training", "proposals", "online", "reporting",
          "experiments", "benchmarks")


def test_imports_point_down_the_floors():
    modules = _modules()
    floor = {m: FLOORS.index(m.split(".")[1]) for m in modules if m.count(".") >= 1 and m.split(".")[1] in FLOORS}
    upward = sorted(f"{m} -> {t}" for m, path in modules.items() if m in floor
                    for t in _imports(m, path, modules) if t in floor and floor[t] > floor[m])
    assert not upward, upward
