"""The Searcher interface has its own module: searchers import it, the factory imports them, no cycle."""
import ast
import pathlib

import recr1.retrieval
from recr1.retrieval import base, searcher

PACKAGE = "recr1.retrieval"
PACKAGE_DIR = pathlib.Path(recr1.retrieval.__file__).parent


def imported_modules(path: pathlib.Path) -> set[str]:
    """Every recr1.retrieval module ``path`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PACKAGE + "."):
            found.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.module == PACKAGE:
            found.update(f"{PACKAGE}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith(PACKAGE + "."))
    return found


def test_retrieval_modules_import_each_other_without_a_cycle():
    graph = {f"{PACKAGE}.{p.stem}": imported_modules(p) for p in PACKAGE_DIR.glob("*.py") if p.stem != "__init__"}
    done, on_path = set(), []

    def visit(module):
        if module in on_path:
            raise AssertionError("import cycle: " + " -> ".join(on_path[on_path.index(module):] + [module]))
        if module in done or module not in graph:
            return
        on_path.append(module)
        for dep in sorted(graph[module]):
            visit(dep)
        on_path.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)
    assert f"{PACKAGE}.base" in graph[f"{PACKAGE}.lucene_searcher"] & graph[f"{PACKAGE}.dense_searcher"]


def test_old_import_paths_still_name_the_same_interface():
    from recr1.retrieval import Searcher as from_package
    from recr1.retrieval.searcher import Hit, Searcher

    assert Searcher is base.Searcher is from_package and Hit is base.Hit
