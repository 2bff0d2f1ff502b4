"""List the import edges between the modules of bert_tf; fail on a cycle or on a job package importing
another job package.

    python scripts/check_imports.py [--edges]

bert_tf is a flat core with one sub-package per job (ner/, classifier/, pretraining/): a job package uses
the core, never another job package, and the core never imports a job package. Every `import bert_tf.x` /
`from bert_tf... import ...` counts, wherever it stands (module level or inside a function), so an import moved
into a function cannot hide a cycle. Exit status 1 and the cycle or the crossing edges on stderr; --edges
prints every edge.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path
from typing import Dict, List, Optional, Set

PACKAGE = "bert_tf"
ROOT = Path(__file__).resolve().parent.parent


def module_name(path: Path) -> str:
    """The dotted module name of a file of the package."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def package_modules() -> Dict[str, Path]:
    """Every module of the package by dotted name."""
    return {module_name(p): p for p in sorted((ROOT / PACKAGE).rglob("*.py"))}


def imported_modules(path: Path, modules: Set[str]) -> Set[str]:
    """The package modules a file imports (a `from package import name` counts `package.name` when that is a
    module, else the package)."""
    found: Set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != PACKAGE:
                continue
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in modules else node.module)
    found.discard(module_name(path))
    return {m for m in found if m in modules and m != PACKAGE}


def import_graph() -> Dict[str, Set[str]]:
    """Module -> the package modules it imports."""
    modules = package_modules()
    return {name: imported_modules(path, set(modules)) for name, path in modules.items()}


def find_cycle(graph: Dict[str, Set[str]]) -> Optional[List[str]]:
    """One import cycle as a list of modules (first repeated at the end), or None."""
    state: Dict[str, int] = {}  # 1: on the current path, 2: done
    path: List[str] = []

    def visit(node: str) -> Optional[List[str]]:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start)
            if cycle:
                return cycle
    return None


def job_of(module: str) -> Optional[str]:
    """The job package a module belongs to (`bert_tf.ner.rows` -> `ner`), or None for the core."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (ROOT / PACKAGE / parts[1]).is_dir()) else None


def crossing_edges(graph: Dict[str, Set[str]]) -> List[str]:
    """Edges from a module into a job package other than its own (core -> job, or job -> another job)."""
    return [f"{source} -> {target}" for source in sorted(graph) for target in sorted(graph[source])
            if job_of(target) is not None and job_of(target) != job_of(source)]


def main(argv: Optional[List[str]] = None) -> int:
    """Print the edges if asked; 1 and the cycle when there is one, else 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edges", action="store_true", help="print every import edge")
    args = parser.parse_args(argv)
    graph = import_graph()
    if args.edges:
        for source in sorted(graph):
            for target in sorted(graph[source]):
                print(f"{source} -> {target}")
    cycle = find_cycle(graph)
    if cycle:
        print("import cycle: " + " -> ".join(cycle), file=sys.stderr)
        return 1
    crossing = crossing_edges(graph)
    if crossing:
        print("imports across job packages (a job package uses only the core):\n  " + "\n  ".join(crossing),
              file=sys.stderr)
        return 1
    jobs = sorted({job_of(m) for m in graph} - {None})
    print(f"no import cycle among {len(graph)} modules ({sum(map(len, graph.values()))} edges); "
          f"job packages {', '.join(jobs)} import only the core")
    return 0


if __name__ == "__main__":
    sys.exit(main())
