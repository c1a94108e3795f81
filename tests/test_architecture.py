"""The structure of the package: imports point one way, the CLI lists every key, the CLI starts light."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hf_transfer import config
from hf_transfer.cli import CONFIG_COMMANDS, main

PACKAGE = Path(__file__).parents[1] / "hf_transfer"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the hf_transfer modules it imports anywhere in its source (top level or inside functions)."""
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                # `from . import x` imports the submodule x when there is one, else a name of the package
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                           for alias in node.names]
            else:
                continue
            edges |= {target for target in targets if target in modules and target != name}
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = "done"
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    assert len(graph) > 30 and graph["hf_transfer.classify"], "the graph sees the package's imports"
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_only_the_cli_knows_argparse_and_nothing_imports_the_cli():
    graph = import_graph()
    assert not [name for name, edges in graph.items() if "hf_transfer.cli" in edges]
    users = [path.name for path in PACKAGE.rglob("*.py")
             if any(isinstance(node, ast.Import) and any(alias.name == "argparse" for alias in node.names)
                    for node in ast.walk(ast.parse(path.read_text())))]
    assert users == ["cli.py"]


@pytest.mark.parametrize("command", sorted(CONFIG_COMMANDS))
def test_help_lists_every_key_with_its_default(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    rows = config.config_help(getattr(config, CONFIG_COMMANDS[command].config_class))
    assert rows
    for key, default, help_text in rows:
        line = next((line for line in printed.splitlines() if line.strip().startswith(key + " ")), None)
        assert line is not None, f"{key} missing from `hf-transfer {command} --help`"
        assert f"(default: {default})" in line and help_text.split()[0] in line


def test_every_config_key_has_help():
    for name in ("ClassifyConfig", "ZeroShotConfig", "PretrainConfig", "CompareConfig"):
        missing = [key for key, _, help_text in config.config_help(getattr(config, name)) if not help_text]
        assert not missing, f"{name}: {missing}"


def test_the_cli_starts_without_torch():
    probe = "import sys, hf_transfer.cli, hf_transfer; print('torch' in sys.modules, 'transformers' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]


COPIED_FROM = re.compile(r"^\s*# Copied from hf_transfer\.(\S+?)(?: with (\w+)->(\w+))?$")


def definitions(path: Path) -> dict[str, ast.AST]:
    """qualified name -> function or class node of a module (methods as Class.method)."""
    found = {}

    def visit(node, prefix=""):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.ClassDef)):
                found[prefix + child.name] = child
                visit(child, prefix + child.name + ".")

    visit(ast.parse(path.read_text()))
    return found


def source_of(path: Path, node: ast.AST) -> str:
    return textwrap.dedent(ast.get_source_segment(path.read_text(), node, padded=True))


def test_remote_code_copies_stay_identical_to_their_original():
    """Each modeling file must stand alone as remote code, so some code is repeated; every repeat is marked
    `# Copied from hf_transfer.MODULE.NAME [with A->B]` right above it and must equal its original."""
    checked = 0
    for path in sorted((PACKAGE / "models").glob("*.py")):
        lines = path.read_text().splitlines()
        here = {node.lineno: node for node in definitions(path).values()}
        for number, line in enumerate(lines, start=1):
            match = COPIED_FROM.match(line)
            if not match:
                continue
            target, old, new = match.groups()
            module, _, name = target.partition(".")  # models.modeling_attention.NAME
            module_path = PACKAGE / module / (name.split(".")[0] + ".py")
            qualified = name.split(".", 1)[1]
            original = source_of(module_path, definitions(module_path)[qualified])
            copy = source_of(path, here[number + 1])
            assert copy == (original.replace(old, new) if old else original), f"{path.name}:{number + 1} drifted"
            checked += 1
    assert checked >= 6
