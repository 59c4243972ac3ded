"""Execute one chapter: Jupytext source -> Papermill with parameters -> executed ``.ipynb``.

The one way chapters are executed (``make book``, ``make chapter`` and the tests). The output is
written atomically, so a failed execution never leaves a notebook that looks finished; the cell
Papermill injects is collapsed in the book but kept, so every page shows the parameters it ran with.

    python -m ltmpq.tools.execute notebooks/01_evaluation.py out.ipynb -p profile smoke -p seeds "[0, 1]"
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import jupytext
import nbformat
import papermill
import yaml

from ..io import atomic_write
from ..paths import ROOT


def execute_chapter(
    source: Path, output: Path, parameters: dict[str, Any] | None = None, progress: bool = False
) -> None:
    """Run the py:percent chapter ``source`` with ``parameters`` and write the result to ``output``."""
    source, output = Path(source), Path(output)
    if not source.is_file():
        raise FileNotFoundError(f"no chapter source {source}")
    nb = jupytext.read(source)
    if not any("parameters" in c.metadata.get("tags", []) for c in nb.cells):
        raise ValueError(f"{source} has no cell tagged 'parameters'")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / f"{source.stem}.ipynb"
        out = Path(tmp) / f"{source.stem}.executed.ipynb"
        nbformat.write(nb, src)
        papermill.execute_notebook(
            str(src), str(out), parameters=parameters or {}, kernel_name="python3",
            cwd=str(source.parent), progress_bar=progress, log_output=False,
        )  # fmt: skip
        executed = nbformat.read(out, as_version=4)
    for cell in executed.cells:
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags and "hide-input" not in tags:
            cell.metadata["tags"] = [*tags, "hide-input"]
    atomic_write(output, lambda tmp: nbformat.write(executed, tmp))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ltmpq.tools.execute", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument(
        "source", type=Path, help=f"chapter source, e.g. {ROOT.name}/notebooks/01_evaluation.py"
    )
    parser.add_argument("output", type=Path, help="executed notebook to write")
    parser.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="override a parameter; VALUE is read as YAML (True, 0.01, [0, 1], smoke)",
    )
    args = parser.parse_args(argv)
    params = {name: yaml.safe_load(value) for name, value in args.parameter}
    execute_chapter(args.source, args.output, params, progress=True)
    print(f"executed: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
