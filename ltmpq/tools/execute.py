"""Execute one chapter: Jupytext source -> Papermill with parameters -> executed ``.ipynb``.

The one way chapters are executed (``make book``, ``make chapter`` and the tests). The output is
written atomically, so a failed execution never leaves a notebook that looks finished; the cell
Papermill injects is collapsed in the book but kept, so every page shows the parameters it ran with.

    python -m ltmpq.tools.execute notebooks/01_evaluation.py out.ipynb -p profile smoke -p seeds "[0, 1]"
"""

from __future__ import annotations

import argparse
import ast
import os
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

#: Errors raised in a chapter that are about its input (a parameter, a missing result, the data),
#: shown as one line; anything else is a bug and keeps its traceback.
USER_ERRORS = ("ValueError", "MissingResultError", "DataNotFoundError", "DataError", "FileNotFoundError")


#: Where a chapter writes its downloadable tables (:func:`ltmpq.tables.download`).
DOWNLOADS = "LTMPQ_DOWNLOADS"


def parameter_names(nb) -> list[str]:
    """The names the cell tagged ``parameters`` assigns, in order."""
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"a chapter needs exactly one cell tagged 'parameters', found {len(cells)}")
    names = []
    for node in ast.parse(cells[0].source).body:
        targets = (
            node.targets
            if isinstance(node, ast.Assign)
            else [node.target]
            if isinstance(node, ast.AnnAssign)
            else []
        )
        names += [t.id for t in targets if isinstance(t, ast.Name)]
    return names


def check_output(source: Path, output: Path) -> None:
    """Refuse an ``output`` that cannot receive the executed notebook, before anything runs (an
    execution takes minutes, and writing over a chapter source would lose it)."""
    source, output = Path(source), Path(output)
    if output.exists() and os.path.samefile(output, source):  # also through a symlink or a hard link
        raise ValueError(f"output {output} is the chapter source {source}; name the .ipynb notebook to write")
    if output.is_dir():
        raise ValueError(f"output {output} is a folder; name the .ipynb notebook to write, "
                         f"e.g. {output / f'{source.stem}.ipynb'}")  # fmt: skip
    if output.suffix != ".ipynb":  # writing JSON to a .py (or any other) name could clobber a source
        raise ValueError(f"output {output} must end in .ipynb (an executed notebook), got {output.suffix!r}")
    # the nearest existing ancestor must be a folder, or the write fails only after the execution
    parent = next((p for p in output.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise ValueError(f"output {output} cannot be written: {parent} is a file, not a folder")


def execute_chapter(
    source: Path, output: Path, parameters: dict[str, Any] | None = None, progress: bool = False
) -> None:
    """Run the py:percent chapter ``source`` with ``parameters`` and write the result to ``output``."""
    source, output = Path(source), Path(output)
    if not source.is_file():
        raise FileNotFoundError(f"no chapter source {source}")
    check_output(source, output)
    nb = jupytext.read(source)
    known = parameter_names(nb)
    unknown = [name for name in (parameters or {}) if name not in known]
    if unknown:  # Papermill would only warn and run the chapter with its defaults
        names = ", ".join(map(repr, unknown))
        raise ValueError(f"unknown parameter{'s' if len(unknown) > 1 else ''} {names} for {source.stem}; "
                         f"its parameters are: {', '.join(known)}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / f"{source.stem}.ipynb"
        out = Path(tmp) / f"{source.stem}.executed.ipynb"
        nbformat.write(nb, src)
        # the chapter's downloadable tables land beside the executed notebook (the book links them)
        before = os.environ.get(DOWNLOADS)
        os.environ[DOWNLOADS] = str(output.resolve().parent / "data")
        try:
            papermill.execute_notebook(
                str(src), str(out), parameters=parameters or {}, kernel_name="python3",
                cwd=str(source.parent), progress_bar=progress, log_output=False,
            )  # fmt: skip
        finally:
            if before is None:
                del os.environ[DOWNLOADS]
            else:
                os.environ[DOWNLOADS] = before
        executed = nbformat.read(out, as_version=4)
    for cell in executed.cells:
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags and "hide-cell" not in tags:  # collapsed, as the parameters are
            cell.metadata["tags"] = [t for t in tags if t != "hide-input"] + ["hide-cell"]
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
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    args = parser.parse_args(argv)
    params = {name: yaml.safe_load(value) for name, value in args.parameter}
    debug = args.debug or bool(os.environ.get("LTMPQ_DEBUG"))
    try:
        execute_chapter(args.source, args.output, params, progress=True)
    except papermill.PapermillExecutionError as exc:
        if debug or exc.ename not in USER_ERRORS:
            raise
        print(f"error: {args.source.stem}: {exc.ename}: {exc.evalue.strip()}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError) as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"executed: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
