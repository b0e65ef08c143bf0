"""The package's layers: every module imports only from its own layer or below, and no imports form a circle.

The table below is the one place the order is written (docs/architecture.md explains it). The walk
reads every module with `ast`, imports inside functions included, so a circle cannot hide in a function.
Run as a script (`python tests/test_layers.py [SRC]`) it prints the counts for any checkout.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "src"

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    # (layer, the modules in it: a name covers its sub-modules; the longest matching name decides)
    ("base", ("spriteforge", "spriteforge.errors", "spriteforge.versions")),
    # files: image files and the bundled Inception weights (options checks they exist for --callback-evaluate-fid)
    ("files", ("spriteforge.imageio", "spriteforge.evaluation.inception")),
    ("options", ("spriteforge.options", "spriteforge.palettes")),
    ("devices", ("spriteforge.devices", "spriteforge.distributed")),
    ("pixel art", ("spriteforge.pixelart",)),
    ("data", ("spriteforge.data",)),
    ("models", ("spriteforge.models",)),
    ("evaluation", ("spriteforge.evaluation",)),
    ("training", ("spriteforge.training",)),
    ("use", ("spriteforge.inference", "spriteforge.drawing", "spriteforge.evaluating")),
    ("api", ("spriteforge.api",)),
    ("commands", ("spriteforge.translation", "spriteforge.sampling", "spriteforge.stylize", "spriteforge.experiment",
                  "spriteforge.pixelating", "spriteforge.atlas", "spriteforge.export", "spriteforge.model_cards",
                  "spriteforge.denoising")),
    ("front ends", ("spriteforge.cli", "spriteforge.studio", "spriteforge.__main__")),
]

FACADE = "__getattr__"
"""A package's module-level `__getattr__` (PEP 562) re-exports names from above on first use, so that
`import spriteforge` stays light; nothing inside the package goes through it, so its imports are not edges."""


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    line: int
    in_function: bool
    implicit: bool = False  # importing a.b.c runs a/b/__init__.py first


def modules(source: Path = SOURCE) -> dict[str, Path]:
    found = {}
    for path in sorted((source / "spriteforge").rglob("*.py")):
        parts = list(path.relative_to(source).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _module_level_imports(path: Path) -> bool:
    return any(isinstance(node, (ast.Import, ast.ImportFrom)) and "spriteforge" in ast.dump(node) for node in ast.parse(path.read_text()).body)


def imports(source: Path = SOURCE) -> list[Import]:
    """Every import of a spriteforge module by a spriteforge module (TYPE_CHECKING blocks and facades skipped)."""
    known = modules(source)

    def resolve(name: str) -> str:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name

    found: list[Import] = []
    for module, path in known.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]

        def visit(node: ast.AST, in_function: bool) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                    continue
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) and child.name == FACADE and node is tree and path.name == "__init__.py":
                    continue
                names: list[str] = []
                if isinstance(child, ast.Import):
                    names = [alias.name for alias in child.names]
                elif isinstance(child, ast.ImportFrom):
                    base = child.module or ""
                    if child.level:
                        parts = package.split(".")[: len(package.split(".")) - child.level + 1]
                        base = ".".join(parts + ([base] if base else []))
                    names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in child.names]
                for name in names:
                    if name.split(".")[0] == "spriteforge":
                        target = resolve(name)
                        if target != module:
                            found.append(Import(module, target, child.lineno, in_function))
                visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

        tree = ast.parse(path.read_text())
        visit(tree, False)
    implicit = []
    for edge in found:
        parent = edge.target.rpartition(".")[0]
        while parent:
            if not edge.source.startswith(parent + ".") and parent != edge.source and _module_level_imports(known[parent]):
                implicit.append(Import(edge.source, parent, edge.line, edge.in_function, implicit=True))
            parent = parent.rpartition(".")[0]
    return found + implicit


def layer_of(module: str) -> int:
    best, best_length = None, -1
    for index, (_, names) in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > best_length:
                best, best_length = index, len(name)
    if best is None:
        raise KeyError(f"{module} is in no layer of tests/test_layers.py: add it to LAYERS")
    return best


def upward(edges: list[Import]) -> list[Import]:
    return [e for e in edges if layer_of(e.target) > layer_of(e.source)]


def circles(edges: list[Import]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.source, set()).add(edge.target)
        graph.setdefault(edge.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                connect(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def test_every_module_has_a_layer():
    for module in modules():
        layer_of(module)


def test_imports_go_only_downwards():
    found = upward(imports())
    assert not found, "upward imports:\n" + "\n".join(
        f"  {e.source} ({LAYERS[layer_of(e.source)][0]}) line {e.line} imports {e.target} ({LAYERS[layer_of(e.target)][0]})"
        + (" through its package's __init__" if e.implicit else "") for e in found)


def test_no_import_circles():
    found = circles(imports())
    assert not found, "import circles:\n" + "\n".join("  " + " ⇄ ".join(c) for c in found)


def test_models_never_import_data_loaders():
    """A model names the data it needs (`SpriteModel.data_kind`); the engine reads it (`training.engine.training_data`)."""
    allowed = {"spriteforge.data", "spriteforge.data.augment", "spriteforge.data.batches"}
    found = [e for e in imports() if e.source.startswith("spriteforge.models") and e.target.startswith("spriteforge.data")
             and e.target not in allowed]
    assert not found, "\n".join(f"  {e.source} line {e.line} imports {e.target}" for e in found)


def test_the_walker_sees_imports_inside_functions(tmp_path):
    package = tmp_path / "spriteforge"
    (package / "data").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "data" / "__init__.py").write_text("")
    (package / "data" / "pictures.py").write_text("def f():\n    from spriteforge.training.engine import batch_indices\n")
    (package / "training").mkdir()
    (package / "training" / "__init__.py").write_text("")
    (package / "training" / "engine.py").write_text("from spriteforge.data import pictures\n")
    edges = imports(tmp_path)
    assert [(e.source, e.target, e.in_function) for e in upward(edges)] == [("spriteforge.data.pictures", "spriteforge.training.engine", True)]
    assert circles(edges) == [["spriteforge.data.pictures", "spriteforge.training.engine"]]


if __name__ == "__main__":  # counts for a checkout: python tests/test_layers.py [SRC]
    arguments = [argument for argument in sys.argv[1:] if not argument.startswith("-")]
    root = Path(arguments[0]) if arguments else SOURCE
    edges = [e for e in imports(root) if not e.implicit]
    statements = {(e.source, e.line) for e in edges if e.in_function}
    print(f"modules {len(modules(root))}; import edges {len(edges)}; function-level import statements {len(statements)}")
    for name, chosen in (("all", imports(root)), ("module-level", [e for e in imports(root) if not e.in_function])):
        found = circles(chosen)
        print(f"circles ({name} imports): {len(found)} {[len(c) for c in found]}")
    ups = upward(imports(root))
    print(f"upward imports: {len(ups)} in {len({(e.source, e.line) for e in ups})} statements")
    if "-v" in sys.argv:
        for e in ups:
            print("  up", e)
        for source, line in sorted(statements):
            print("  in function", source, line)
