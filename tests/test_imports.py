"""The package's shape: no import cycle (imports inside functions count), the modules that read
and judge results import without torch, a small lazy public surface, and chapters free of tooling."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import ltmpq

PACKAGE = Path(ltmpq.__file__).parent

#: What chapters and the status command read and judge with: none of it may need torch.
TORCH_FREE = (
    "ltmpq.vocab", "ltmpq.config", "ltmpq.plan", "ltmpq.schema", "ltmpq.results", "ltmpq.load",
    "ltmpq.frames", "ltmpq.claims", "ltmpq.verdicts", "ltmpq.sensitivity", "ltmpq.correlation",
    "ltmpq.uncertainty", "ltmpq.tables", "ltmpq.blog", "ltmpq.params", "ltmpq.cli", "ltmpq.recipe",
    "ltmpq.analysis.ch0_introduction", "ltmpq.analysis.ch1_evaluation", "ltmpq.analysis.ch2_decoupling",
    "ltmpq.analysis.ch3_quantization", "ltmpq.analysis.ch4_mitigation", "ltmpq.analysis.ch5_six_bits",
    "ltmpq.analysis.appendix_recipe", "ltmpq.analysis.ch6_beyond", "ltmpq.analysis.ch7_mitigations",
    "ltmpq.analysis.answers", "ltmpq.runtable",
)  # fmt: skip


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports, at the top or inside functions."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                mod = ".".join(base + (node.module.split(".") if node.module else []))
                targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod for a in node.names]
            else:
                continue
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while (w := stack.pop()) != v:
                comp.append(w)
            if comp:
                out.append(sorted([v, *comp]))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_cycle():
    """The oracle: a hand-made graph with one cycle of three and a self-free tail."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert "ltmpq.runs" in graph["ltmpq.engine"]  # imports inside functions are seen
    assert cycles(graph) == []


def test_reading_and_judging_results_needs_no_torch():
    # a finder that refuses torch (sys.modules["torch"] = None would break scipy's own probe of it)
    code = (
        "import importlib, sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'torchvision'):\n"
        "            raise ImportError(f'{name} is blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        f"for m in {list(TORCH_FREE)!r}:\n"
        "    importlib.import_module(m)\n"
        "assert 'torch' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


# ------------------------------------------------------------------ the public surface


def test_the_public_surface_is_small_documented_and_lazy():
    assert set(ltmpq.__all__) == {"ChapterParams", "analysis", "blog", "claims", "frames", "load", "plotting",
                                  "tables", "verdicts"}  # fmt: skip
    assert ltmpq.ChapterParams.__module__ == "ltmpq.params"
    with pytest.raises(AttributeError, match="no attribute 'report'"):
        ltmpq.report  # noqa: B018 - the old catch-all module is gone
    code = "import sys, ltmpq; print('torch' in sys.modules, 'pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]  # importing the package loads nothing heavy


def test_chapters_import_no_tooling():
    from pathlib import Path

    for nb in sorted(Path(ltmpq.__file__).parent.parent.glob("notebooks/[0-9]*.py")):
        assert "ltmpq.tools" not in nb.read_text(), nb.name
