"""ltmpq: long-tailed data meets (mixed-precision) quantization, a reproducible study.

What a chapter imports (loaded on first use, so ``import ltmpq`` stays cheap)::

    from ltmpq import ChapterParams, load, frames, tables, plotting, blog, claims
    from ltmpq.analysis import ch3_quantization as ch3

==================  ===============================================================
``ChapterParams``   the parameters cell, checked and frozen (:mod:`ltmpq.params`)
``load``            the stored results of a chapter's runs
``frames``          stored results as tidy tables
``analysis``        every number a chapter glues, tabulates or judges, per chapter
``claims``          the blog's claims, their parts and verdicts (rule in ``verdicts``)
``tables``          formatting: ``mean ± CI``, tables that fit the page, glue
``plotting``        the figures two chapters share
``blog``            the blog's published numbers
==================  ===============================================================

Running the study is :mod:`ltmpq.runs` and :mod:`ltmpq.engine` (``make runs``), on the published
weights of :mod:`ltmpq.weights`; algorithms live in ``data``, ``models``,
``training``, ``decoupling``, ``quantization``, ``mpq``, ``metrics`` and ``uncertainty``;
:mod:`ltmpq.tools` is tooling (executing chapters, the book check, the benchmark).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["ChapterParams", "analysis", "blog", "claims", "frames", "load", "plotting", "tables", "verdicts"]


def __getattr__(name: str) -> Any:
    # PEP 562: the submodules import torch, pandas and matplotlib; load them only when asked
    if name == "ChapterParams":
        from .params import ChapterParams

        return ChapterParams
    if name in __all__:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'ltmpq' has no attribute {name!r}")
