"""Which part of edgecc may import which, checked on the source (every import statement, those inside functions
too), so that a forbidden import fails here with its file:line rather than in a review:

- runtime/ runs bundles with the runtime alone: it never imports the compiler's frontends or backends;
- targets/ is data and its schema: it imports nothing from compiler/ or runtime/;
- compiler/ and edgecc/ reach runners only through the registry (edgecc.runtime.runners), never a runner module;
- every edgecc module an import names exists (a moved module leaves no stale import behind, lazy ones included).
"""

import ast
import tomllib
from pathlib import Path

from tests.conftest import REPO

FOLDERS = ("runtime", "targets", "edgecc", "compiler")
RUNNERS = "edgecc.runtime.runners"

# IreeBackend.runner (and its helper) still pick runners themselves until the IREE backend's restructure is merged;
# runner_for has their logic. Delete both with them, and then these entries.


def _package_dirs() -> dict[str, Path]:
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    return {pkg: REPO / folder for pkg, folder in setuptools["package-dir"].items()}


PACKAGES = _package_dirs()


def module_name(path: Path) -> str:
    """The dotted name a source file is imported as (from pyproject's package-dir)."""
    best = max((p for p, d in PACKAGES.items() if d in path.parents), key=lambda p: len(PACKAGES[p].parts))
    rel = path.relative_to(PACKAGES[best]).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join([best, *parts])


def module_file(name: str) -> Path | None:
    """The source of module `name`, or None when there is none."""
    for pkg in sorted(PACKAGES, key=len, reverse=True):
        if name == pkg or name.startswith(pkg + "."):
            base = PACKAGES[pkg].joinpath(*name[len(pkg):].lstrip(".").split(".")) if name != pkg else PACKAGES[pkg]
            for f in (base / "__init__.py", base.with_suffix(".py")):
                if f.is_file():
                    return f
            return None
    return None


def imports(path: Path, rel: str):
    """(line, imported module, enclosing function's qualified name) for every import in the file, read as the
    repository's file `rel`. A `from M import N` gives M.N when N is a module, else M."""
    tree = ast.parse(path.read_text(), rel)
    here = module_name(REPO / rel)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = []

    def visit(node, scope):
        for child in ast.iter_child_nodes(node):
            inner = scope
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                inner = f"{scope}.{child.name}" if scope else child.name
            if isinstance(child, ast.Import):
                found.extend((child.lineno, a.name, scope) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parent = package.split(".")[:len(package.split(".")) - child.level + 1]
                    base = ".".join(parent + ([base] if base else []))
                for a in child.names:
                    sub = f"{base}.{a.name}"
                    found.append((child.lineno, sub if module_file(sub) else base, scope))
            visit(child, inner)

    visit(tree, "")
    return found


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def problems_in(path: Path, rel: str = "") -> list[str]:
    rel = rel or path.relative_to(REPO).as_posix()
    folder = rel.split("/")[0]
    out = []
    for line, name, _scope in imports(path, rel):
        why = ""
        if folder == "runtime" and any(_under(name, m) for m in ("edgecc.compiler.frontends",
                                                                 "edgecc.compiler.backends")):
            why = "runtime/ must not import the compiler's frontends or backends"
        elif folder == "targets" and (_under(name, "edgecc.compiler") or _under(name, "edgecc.runtime")):
            why = "targets/ imports nothing from compiler/ or runtime/"
        elif folder in ("compiler", "edgecc") and _under(name, RUNNERS) and name != RUNNERS:
            why = f"{folder}/ reaches runners only through the registry: import from {RUNNERS}"
        elif _under(name, "edgecc") and module_file(name) is None:
            why = "no such edgecc module"
        if why:
            out.append(f"{rel}:{line}: imports {name}: {why}")
    return out


def sources() -> list[Path]:
    return sorted(p for f in FOLDERS for p in (REPO / f).rglob("*.py") if "__pycache__" not in p.parts)


def test_imports_go_the_allowed_directions():
    problems = [p for f in sources() for p in problems_in(f)]
    assert not problems, "forbidden imports:\n" + "\n".join(problems)


def test_the_check_sees_imports_inside_functions(tmp_path):
    """The checker itself: a forbidden import in each folder, lazy or not, is reported with its file and line."""
    cases = {"runtime/x_bad.py": ("def f():\n    from edgecc.compiler.frontends import load_model\n", 2),
             "targets/x_bad.py": ("import edgecc.runtime.stats\n", 1),
             "compiler/x_bad.py": ("class C:\n    def m(self):\n        from edgecc.runtime.runners import local\n", 3),
             "edgecc/x_bad.py": ("from edgecc.runtime.runners.qemu_user import QemuUserRunner\n", 1)}
    for rel, (text, line) in cases.items():
        f = tmp_path / Path(rel).name
        f.write_text(text)
        (problem,) = problems_in(f, rel)
        assert problem.startswith(f"{rel}:{line}: imports "), problem
