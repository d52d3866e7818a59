"""The library's layout: every public name has one home, imports name that home, no cycle, no
forwarding ``__getattr__``, and every part with logic of its own has a test module.

Read statically (the AST of every library module, test, bench script, tool and notebook cell),
so a lazy import inside a function counts like one at the top.
"""

import ast
import importlib
import inspect
import json
from pathlib import Path

import pytest
from course_files import NOTEBOOKS, ROOT

LIB = ROOT / "bidsnet_lib"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(LIB.rglob("*.py"))}
PACKAGES = {name for name, p in MODULES.items() if p.name == "__init__.py" and name != "bidsnet_lib"
            and name != "bidsnet_lib.commands"}


def package_of(name: str) -> str | None:
    """The concept package an inner module belongs to (``bidsnet_lib.train`` for ``.train.loop``)."""
    parent = name.rpartition(".")[0]
    return parent if parent in PACKAGES else None


def defined_names(path: Path) -> set[str]:
    """Top-level names a module defines itself (functions, classes, assignments), and submodules."""
    tree = ast.parse(path.read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    if path.name == "__init__.py":
        names.update(module_name(p).rpartition(".")[2] for p in path.parent.iterdir()
                     if (p.suffix == ".py" and p.name != "__init__.py") or (p / "__init__.py").is_file())
    return names


def face_names(name: str) -> list[str]:
    tree = ast.parse(MODULES[name].read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return [elt.value for elt in node.value.elts]
    return []


def public_names(name: str) -> set[str]:
    """What may be imported from module ``name``: a package's ``__all__``, a module's own names."""
    return set(face_names(name)) if name in PACKAGES else defined_names(MODULES[name])


def sources():
    """(where, importing module or None, code) for every Python source of the course."""
    for path in sorted([*LIB.rglob("*.py"), *(ROOT / "tests").rglob("*.py"), *(ROOT / "bench").glob("*.py"),
                        *(ROOT / "tools").glob("*.py"), *(ROOT / "site").glob("*.py")]):
        yield str(path.relative_to(ROOT)), module_name(path) if path.is_relative_to(LIB) else None, path.read_text()
    for notebook in NOTEBOOKS:
        for index, cell in enumerate(json.loads(notebook.read_text())["cells"]):
            if cell["cell_type"] == "code":
                code = "\n".join(line for line in "".join(cell["source"]).splitlines()
                                 if not line.lstrip().startswith(("%", "!")))
                yield f"{notebook.name} cell {index}", None, code


def library_imports(code: str):
    """(module, names) of every ``from bidsnet_lib... import`` and ``import bidsnet_lib...``."""
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("bidsnet_lib"):
            yield node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("bidsnet_lib"):
                    yield alias.name, []


def module_aliases(code: str) -> dict[str, str]:
    """Local name -> library module, for ``from bidsnet_lib import x [as y]`` and ``import bidsnet_lib.x as y``."""
    aliases = {}
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("bidsnet_lib"):
            for alias in node.names:
                if f"{node.module}.{alias.name}" in MODULES:
                    aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in MODULES and alias.asname:
                    aliases[alias.asname] = alias.name
    return aliases


def test_every_public_name_of_a_package_is_defined_inside_it():
    assert PACKAGES >= {"bidsnet_lib.masks", "bidsnet_lib.train", "bidsnet_lib.evaluate", "bidsnet_lib.ablate"}
    for package in sorted(PACKAGES):
        face = importlib.import_module(package)
        assert face.__all__ == face_names(package), f"{package}: __all__ is read statically"
        assert len(set(face.__all__)) == len(face.__all__), f"{package}: a name twice in __all__"
        for name in face.__all__:
            obj = getattr(face, name)
            home = getattr(obj, "__module__", None) if inspect.isclass(obj) or inspect.isfunction(obj) else None
            assert home is None or home.startswith(package + "."), f"{package}.{name} is defined in {home}"
        inner = {n for n in MODULES if package_of(n) == package}
        exported = set()
        for module in inner:
            exported |= {n for n in defined_names(MODULES[module]) if not n.startswith("_")} & set(face.__all__)
        assert exported == set(face.__all__), f"{package}: __all__ names what its modules do not define"


def test_imports_name_each_names_one_home():
    problems = []
    for where, importer, code in sources():
        for module, names in library_imports(code):
            if module not in MODULES:
                problems.append(f"{where}: no module {module}")
                continue
            owner = package_of(module)
            if owner and not (importer and (importer == owner or package_of(importer) == owner)):
                problems.append(f"{where}: imports the inner module {module}; import from {owner}")
                continue
            inside = importer is not None and (importer == module or importer.startswith(module + ".")
                                               or (owner is not None and package_of(importer) == owner))
            allowed = public_names(module) if module in PACKAGES and not inside else defined_names(MODULES[module])
            for name in names:
                if name == "*":
                    problems.append(f"{where}: star import from {module}")
                elif name not in allowed:
                    problems.append(f"{where}: {name} is not a public name of {module}")
                elif name.startswith("_") and importer is None:
                    problems.append(f"{where}: imports the private {module}.{name}")
    assert not problems, "\n".join(problems)


def test_module_attributes_used_are_public_names_of_that_module():
    """``ev.load_photos`` after ``from bidsnet_lib import evaluate as ev`` must name a home, too."""
    problems = []
    cells = [(where, code) for where, importer, code in sources() if importer is None]
    notebook_aliases = {}  # a notebook imports a module in one cell and uses it in later ones
    for where, code in cells:
        if " cell " in where:
            notebook_aliases.setdefault(where.partition(" cell ")[0], {}).update(module_aliases(code))
    for where, code in cells:
        aliases = {**notebook_aliases.get(where.partition(" cell ")[0], {}), **module_aliases(code)}
        for node in ast.walk(ast.parse(code)):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and isinstance(node.ctx, ast.Load)):
                module = aliases[node.value.id]
                if node.attr not in public_names(module) and not node.attr.startswith("__"):
                    problems.append(f"{where}: {node.value.id}.{node.attr} is not a public name of {module}")
            # Patching a package's face changes nothing its inner modules look up: patch the inner module.
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "setattr"
                    and node.args and isinstance(node.args[0], ast.Name) and aliases.get(node.args[0].id) in PACKAGES):
                problems.append(f"{where}: setattr on the face {aliases[node.args[0].id]}; patch its inner module")
    assert not problems, "\n".join(sorted(set(problems)))


def test_no_forwarding_getattr_and_no_import_cycle():
    graph = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text())
        assert not [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in ("__getattr__", "__dir__")], name
        targets = set()
        for module, names in library_imports(path.read_text()):
            # `from bidsnet_lib import x` depends on the submodule x where x is one
            subs = [f"{module}.{n}" for n in names if f"{module}.{n}" in MODULES]
            targets.update(subs or [module])
        graph[name] = targets - {name}
    for package in PACKAGES:  # a face depends on its inner modules through its own imports
        graph[package] |= {n for n in MODULES if package_of(n) == package}

    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                pytest.fail("import cycle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)


# The main part of a package is tested by tests/test_<package>.py, the others by test_<package>_<part>.py.
MAIN_PART = {"bidsnet_lib.masks.draw", "bidsnet_lib.train.loop", "bidsnet_lib.evaluate.evaluation",
             "bidsnet_lib.ablate.runner"}


def test_every_part_with_logic_has_its_test_module():
    missing = []
    for name, path in MODULES.items():
        short = name.removeprefix("bidsnet_lib.")
        if path.name == "__init__.py" or short.startswith("commands") or short == "cli":
            continue  # faces re-export; commands are tested beside their concept (test_<concept>.py)
        tree = ast.parse(path.read_text())
        if not any(isinstance(n, ast.FunctionDef | ast.ClassDef) for n in tree.body):
            continue
        test = short.partition(".")[0] if name in MAIN_PART else short.replace(".", "_")
        if not (ROOT / "tests" / f"test_{test}.py").is_file():
            missing.append(f"{name}: tests/test_{test}.py")
    assert not missing, "\n".join(missing)
