"""The study's shared vocabulary, without torch: class, method and layer names, the float marker
and the one check of a bit-width. Every module (and chapter) that names these imports them here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: CIFAR-10's classes, in label order (0 = airplane ... 9 = truck).
CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
NUM_CLASSES = len(CLASSES)

#: Chapter 2's classifiers on one stage-1 backbone: the baseline's own and the decoupled ones.
METHODS = ("baseline", "crt", "tau_norm", "lws", "ncm")
#: Post-hoc logit adjustment (Menon et al. 2021): the stage-1 classifier's logits minus
#: ``tau * log(prior)``; a stage-2 method that runs where a run's ``DecoupleConfig.extra_methods``
#: asks for it (the runs published before it have the five above).
LOGIT_ADJ = "logit_adj"
EXTRA_METHODS = (LOGIT_ADJ,)
ALL_METHODS = METHODS + EXTRA_METHODS
METHOD_LABELS = {"baseline": "baseline (CE)", "crt": "cRT", "tau_norm": "tau-norm",
                 "lws": "LWS", "ncm": "NCM", LOGIT_ADJ: "logit adj."}  # fmt: skip


def methods_in(names) -> list[str]:
    """The stage-2 methods among ``names`` (e.g. a frame's ``method`` column), in
    :data:`ALL_METHODS` order: what a chapter shows of the results it has."""
    present = set(names)
    return [m for m in ALL_METHODS if m in present]


#: The blog's decoupled model (cRT), and the two models it quantizes: the baseline and that one.
DECOUPLED = "crt"
BLOG_MODELS = ("baseline", DECOUPLED)

#: VGG16's 16 weight layers, as the blog's sensitivity figure names them (L1..L13 convolutions,
#: L14..L16 fully connected; L16 is the classifier).
LAYER_NAMES: tuple[str, ...] = tuple(f"L{i}" for i in range(1, 17))

#: The bit-width of an unquantized layer (and the float reference of every sweep).
FLOAT = "float"
#: Weight, activation and logit bit-widths the quantizers implement.
MIN_BITS, MAX_BITS = 2, 16


def check_bits(bits: Any, where: str = "bits", *, allow_float: bool = False, others: str = "") -> Any:
    """``bits`` as a plain int if it is one in [``MIN_BITS``, ``MAX_BITS``] (or :data:`FLOAT` when
    ``allow_float``); otherwise a one-line error naming ``where``, the value and what is allowed
    (``others``: the caller's own further choices, for the message, e.g. ``", 'match' or None"``).
    The one place where "a bit-width" is defined (configs, quantizers, sweeps, chapters)."""
    if allow_float and isinstance(bits, str) and bits == FLOAT:
        return FLOAT
    if (
        isinstance(bits, bool | np.bool_)
        or not isinstance(bits, int | np.integer)
        or not (MIN_BITS <= bits <= MAX_BITS)
    ):
        also = others or (f" or {FLOAT!r}" if allow_float else "")
        raise ValueError(f"{where} must be an int in [{MIN_BITS}, {MAX_BITS}]{also}, got {bits!r}")
    return int(bits)
