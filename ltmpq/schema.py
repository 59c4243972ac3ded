"""The declared schema of a stored result (pydantic v2), checked whenever one is read. Without torch.

One model per kind of result (:data:`KINDS`: stage 1, stage 2, a uniform quantizer sweep, chapter
4's mixed precision, chapter 5's measurements, a recipe-search candidate), sharing an
:class:`Evaluation` and the :class:`Provenance`. Beyond types it checks what a chapter would
otherwise misread silently: every number finite (Python's ``json`` parses ``NaN`` and
``Infinity``), predictions of the right length and alphabet, one per-class entry per class,
digests of the SHA-256 form, a stage version >= 1. :func:`problem` says what is wrong in one line
naming the field; :mod:`ltmpq.results` refuses such a file when reading and when writing.
"""

from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from .vocab import FLOAT, MAX_BITS, MIN_BITS

#: The ``schema`` field of every stored result (a reader of another version refuses the file).
SCHEMA = 1
#: The kinds of stored results, one model each (:data:`MODELS`).
KINDS = ("stage1", "decoupled", "quantized", "mpq", "explain", "recipe")


class ResultError(ValueError):
    """A parsed result that does not follow the schema; the message is :func:`problem`'s line."""


def _fail(at: str, why: str):
    """Refuse a value: ``at`` is the field's path below the model that checks it ('' for itself)."""
    raise PydanticCustomError("result", "{at}: {why}", {"at": at, "why": why})


def _shown(v: Any) -> str:
    """A value as a short message shows it: JSON's spelling, long strings cut."""
    if v is None or isinstance(v, bool):
        return json.dumps(v)
    if isinstance(v, str):
        return repr(v) if len(v) <= 24 else repr(v[:20]) + f"... ({len(v)} characters)"
    if isinstance(v, dict):
        return "an object"
    if isinstance(v, list):
        return f"a list of {len(v)}"
    return repr(v)


# ------------------------------------------------------------------ field types

_HEX = re.compile(r"[0-9a-f]*")
_DIGITS = re.compile(r"[0-9]*")
_NOT_DIGIT = re.compile(r"[^0-9]")


def _hex(n: int, what: str):
    def check(v: str) -> str:
        if len(v) != n:
            _fail("", f"not {what} ({len(v)} characters, {n} expected)")
        if not _HEX.fullmatch(v):
            _fail("", f"not {what} (not lowercase hex: {_shown(v)})")
        return v

    return AfterValidator(check)


def _labels(v: Any) -> str | list[int]:
    """Class labels as :func:`ltmpq.results.encode_predictions` stores them: a string of digits (up
    to 10 classes) or a list of ints >= 0. Their range is checked where the class count is known."""
    if isinstance(v, str):
        if not _DIGITS.fullmatch(v):
            bad = _NOT_DIGIT.search(v)
            _fail("", f"{bad.group()!r} at position {bad.start()} is not a class digit")
        return v
    if isinstance(v, list):
        for i, x in enumerate(v):
            if type(x) is not int or x < 0:  # bool is an int subclass: refused too
                _fail(f"[{i}]", f"not a class label (got {_shown(x)})")
        return v
    _fail("", f"neither a string of class digits nor a list of class labels (got {_shown(v)})")


def _bits(v: Any) -> int | str:
    """A bit-width as :func:`ltmpq.vocab.check_bits` defines it, or the float marker."""
    if v == FLOAT and isinstance(v, str) or type(v) is int and MIN_BITS <= v <= MAX_BITS:
        return v
    _fail("", f"not a bit-width in [{MIN_BITS}, {MAX_BITS}] or {FLOAT!r} (got {_shown(v)})")


def _classes(v: list[int]) -> list[int]:
    if len(v) < 2:
        _fail("", f"{len(v)} class, at least 2 expected")
    return v


Finite = Annotated[float, Field(allow_inf_nan=False)]  # strict: an int is a number, a bool is not
#: A number that may be undefined: NaN (e.g. the KL of a class without images) is stored as null.
Maybe = Finite | None
#: An accuracy or recall (:func:`ltmpq.metrics.evaluate`'s are all fractions); null for a group or
#: class without images.
Share = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Fraction = Share | None
Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0)]
Sha256 = Annotated[str, _hex(64, "a SHA-256 hex digest")]
ConfigHash = Annotated[str, _hex(12, "a config hash")]
Labels = Annotated[str | list[int], PlainValidator(_labels)]
Bits = Annotated[int | str, PlainValidator(_bits)]
TrainCounts = Annotated[list[Count], AfterValidator(_classes)]
#: A part written by code outside this schema (configs, device, history): any JSON object.
Free = dict[str, Any]


def _top(labels: str | list[int]) -> int:
    """The largest class a label sequence names (-1 for none)."""
    if not labels:
        return -1
    return int(max(labels)) if isinstance(labels, str) else max(labels)


def _in_range(at: str, labels: str | list[int] | None, n: int) -> None:
    if labels is not None and (top := _top(labels)) >= n:
        _fail(at, f"class {top} of {n} (labels run 0-{n - 1})")


def _same_length(lengths: dict[str, int], what: str) -> None:
    """All of ``lengths`` (path -> length) equal, else name the first that differs from the first."""
    items = list(lengths.items())
    for at, k in items[1:]:
        if k != items[0][1]:
            _fail(at, f"{k} {what}, {items[0][0]} has {items[0][1]}")


# ------------------------------------------------------------------ shared parts


class _Model(BaseModel):
    # strict: "1" is no stage version and 1.0 no count; extra: a field a later version of the code
    # adds is no reason to refuse a result (closed sets are checked as values: kinds, bits, entries).
    # ``field: T = None`` may be absent (older results) but not null, as pydantic never validates a
    # default; ``T | None`` is where a writer stores null.
    model_config = ConfigDict(extra="allow", strict=True)


class Evaluation(_Model):
    """One model's evaluation on one split (:func:`ltmpq.metrics.evaluate`): metric name ->
    fraction, recall per class, and optionally the confusion matrix and the predicted labels."""

    metrics: dict[str, Fraction]
    per_class: list[Fraction]
    confusion: list[list[Count]] | None = None
    predictions: Labels | None = None

    def n_predictions(self) -> int | None:
        return None if self.predictions is None else len(self.predictions)

    def check(self, at: str, n: int, images: int | None = None, of: str = "images") -> None:
        """Consistent with ``n`` classes (the result's) and, when known, the split's ``images``
        (``of``: what they are, for the message): per-class entries, predictions, confusion."""
        if len(self.per_class) != n:
            _fail(f"{at}.per_class", f"{len(self.per_class)} entries for {n} classes")
        k = self.n_predictions()
        if k is not None and images is not None and k != images:
            _fail(f"{at}.predictions", f"{k} predictions for {images} {of}")
        _in_range(f"{at}.predictions", self.predictions, n)
        if self.confusion is not None:
            if len(self.confusion) != n or any(len(row) != n for row in self.confusion):
                _fail(f"{at}.confusion", f"not {n} x {n}")
            total = sum(map(sum, self.confusion))
            if k is not None and total != k:
                _fail(f"{at}.predictions", f"{k} predictions, the confusion matrix counts {total} images")


class DataSource(_Model):
    """The data a result was computed on (:func:`ltmpq.provenance.data_record`)."""

    sha256: Sha256 | None = None  # absent for a source without one (synthetic data)


class Provenance(_Model):
    """Where a result came from (:func:`ltmpq.provenance.record`)."""

    config: Free
    wall_seconds: Seconds
    data_source: DataSource | None  # required; null: no data (a test's fake result)
    device: Free


class _Result(_Model):
    """What every stored result has: the schema, its run's config hash and kind, the version of the
    stage's code that made it (results made before versions were recorded lack it: version 1)."""

    schema_: Annotated[int, Field(alias="schema", ge=SCHEMA, le=SCHEMA)]
    config_hash: ConfigHash
    stage_version: Annotated[int, Field(ge=1)] = 1
    provenance: Provenance
    # the run's header (:meth:`ltmpq.plan.Run.payload`; a recipe candidate has none): the chapters
    # group results by these, so a wrong type would silently make a group of its own
    profile: str = None
    imbalance_factor: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = None
    seed: Count = None


class _Trained(_Result):
    """A result of one trained model: its long-tailed training counts say how many classes."""

    train_counts: TrainCounts

    @property
    def n_classes(self) -> int:
        return len(self.train_counts)


class _Downstream(_Trained):
    """A result computed from a stage-1 model's published weights (and its stage-2 classifiers)."""

    stage1_hash: ConfigHash = None
    # absent in results made before weights were published; classifiers_sha256 is null where the
    # decoupled result it was copied from lacks it
    weights_sha256: Sha256 = None
    classifiers_sha256: Sha256 | None = None
    calibration_counts: list[Count] | None = None  # null: a quantizer without calibration

    def _check_calibration(self) -> None:
        if self.calibration_counts is not None and len(self.calibration_counts) != self.n_classes:
            _fail(
                "calibration_counts", f"{len(self.calibration_counts)} entries for {self.n_classes} classes"
            )


# ------------------------------------------------------------------ one model per kind


class Stage1(_Trained):
    """Chapter 1: a stage-1 model's validation and test evaluation (:func:`ltmpq.runs.stage1`)."""

    kind: Literal["stage1"]
    groups: dict[str, list[Count]]
    split_sizes: dict[str, Count]
    test_labels: list[Count]
    val: Evaluation
    test: Evaluation
    history: list[Free] = []
    weights: str = None  # the published weights' file, beside the results (absent: not published)
    weights_sha256: Sha256 = None  # absent in results made before weights were published
    train_seconds: Seconds = None
    train_images_per_second: Positive | None = None  # null: NaN, training took no measurable time

    @model_validator(mode="after")
    def _consistent(self):
        n, tests, vals = self.n_classes, self.split_sizes.get("test"), self.split_sizes.get("val")
        _in_range("test_labels", self.test_labels, n)
        if tests is not None and len(self.test_labels) != tests:
            _fail("test_labels", f"{len(self.test_labels)} labels for {tests} test images (split_sizes.test)")
        self.test.check("test", n, len(self.test_labels), "test labels")
        self.val.check("val", n, vals, "validation images (split_sizes.val)")
        for name, members in self.groups.items():
            _in_range(f"groups.{name}", members, n)
        return self


class Method(_Model):
    """One classifier's validation and test evaluation."""

    val: Evaluation
    test: Evaluation


class Fitted(Method):
    """A decoupled classifier: its evaluations, the hyper-parameter chosen on validation and the
    validation curve it was chosen on."""

    choice: Free = {}
    val_curve: list[Finite] = []


class Stage1Classifier(_Model):
    """What tau-norm and LWS act on: the stage-1 classifier's per-class weight norms and biases."""

    weight_norm: list[Finite]
    bias: list[Finite]


def _check_methods(at: str, methods: dict[str, Method], n: int) -> None:
    """Every method of one model: ``n`` classes, and one number of predictions per split."""
    for split in ("val", "test"):
        lengths = {m: k for m, r in methods.items() if (k := getattr(r, split).n_predictions()) is not None}
        _same_length({f"{at}.{m}.{split}.predictions": k for m, k in lengths.items()}, "predictions")
        for m, r in methods.items():
            getattr(r, split).check(f"{at}.{m}.{split}", n)


class Decoupled(_Result):
    """Chapter 2: the decoupled classifiers on one stage-1 backbone (:func:`ltmpq.runs.decoupled`).
    It stores no training counts: the stage-1 classifier's length is the number of classes."""

    kind: Literal["decoupled"]
    methods: dict[str, Fitted] = Field(min_length=1)
    stage1_classifier: Stage1Classifier
    stage1_hash: ConfigHash = None
    weights_sha256: Sha256 = None  # absent in results made before weights were published
    classifiers: str = None
    classifiers_sha256: Sha256 = None

    @model_validator(mode="after")
    def _consistent(self):
        n = len(self.stage1_classifier.weight_norm)
        if n < 2:
            _fail("stage1_classifier.weight_norm", f"{n} class, at least 2 expected")
        if len(self.stage1_classifier.bias) != n:
            _fail("stage1_classifier.bias", f"{len(self.stage1_classifier.bias)} entries for {n} classes")
        _check_methods("methods", self.methods, n)
        return self


class Entry(_Model):
    """One bit-width of a quantizer sweep: its layer -> bits map, model size and every method."""

    bit_map: dict[str, Bits]
    size: dict[str, Finite]
    methods: dict[str, Method] = Field(min_length=1)
    seconds: Seconds = None


class Quantized(_Downstream):
    """Chapters 3 and 5: every classifier at float and at each uniform bit-width of one quantizer
    (:func:`ltmpq.runs.quantized`). The float entry is the reference every chapter compares to."""

    kind: Literal["quantized"]
    quant: Free
    entries: dict[str, Entry] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self):
        self._check_calibration()
        for key in self.entries:
            if key != FLOAT and not (key.isdigit() and MIN_BITS <= int(key) <= MAX_BITS):
                _fail(f"entries.{key}", f"not a bit-width in [{MIN_BITS}, {MAX_BITS}] nor {FLOAT!r}")
        if FLOAT not in self.entries:
            _fail("entries", f"no {FLOAT!r} entry (the reference)")
        names = {key: sorted(e.methods) for key, e in self.entries.items()}
        for key, methods in names.items():
            if methods != names[FLOAT]:
                _fail(f"entries.{key}.methods", f"{methods}, the {FLOAT!r} entry has {names[FLOAT]}")
        for key, e in self.entries.items():
            _check_methods(f"entries.{key}.methods", e.methods, self.n_classes)
        lengths = {
            f"entries.{key}.methods.{m}.test.predictions": k
            for key, e in self.entries.items()
            for m, r in e.methods.items()
            if (k := r.test.n_predictions()) is not None
        }
        _same_length(lengths, "predictions")
        return self


class Allocation(_Model):
    """One mixed-precision allocation (:func:`ltmpq.mpq.allocations`) and its evaluation; its test
    predictions are kept (chapter 4 resamples them)."""

    head: str
    kind: str
    bit_map: dict[str, Bits]
    average_bits: Finite
    size: dict[str, Finite]
    val: Evaluation
    test: Evaluation


class SweepCell(_Model):
    """One layer at one bit-width, everything else float: validation predictions and per-class KL."""

    predictions: Labels
    kl: list[Maybe]


class Sweep(_Model):
    """One head's single-layer sweep: the float model's validation predictions and each cell's."""

    float_: Annotated[Labels, Field(alias="float")]
    layers: dict[str, dict[str, SweepCell]]


class HessianTrace(_Model):
    """One layer's Hutchinson trace estimate (:func:`ltmpq.mpq.model_traces`)."""

    trace: Finite
    stderr: Maybe
    params: Count


class MPQ(_Downstream):
    """Chapter 4: per-layer sensitivities and every allocation of one run
    (:func:`ltmpq.runs.mixed_precision`). Validation and test labels are stored once, as encoded
    predictions: every stored prediction is compared with them."""

    kind: Literal["mpq"]
    allocations: list[Allocation]
    sweep: dict[str, Sweep]
    hessians: dict[str, dict[str, dict[str, HessianTrace]]]
    val_labels: Labels
    test_labels: Labels
    layer_params: dict[str, Count]
    seconds: dict[str, Seconds]
    quant: Free = {}
    mpq: Free = {}

    @model_validator(mode="after")
    def _consistent(self):
        n, n_val, n_test = self.n_classes, len(self.val_labels), len(self.test_labels)
        self._check_calibration()
        _in_range("val_labels", self.val_labels, n)
        _in_range("test_labels", self.test_labels, n)
        for i, a in enumerate(self.allocations):
            a.val.check(f"allocations[{i}].val", n, n_val, "val labels")
            a.test.check(f"allocations[{i}].test", n, n_test, "test labels")
            if a.test.predictions is None:
                _fail(f"allocations[{i}].test.predictions", "missing")
        for head, s in self.sweep.items():
            cells = {f"sweep.{head}.float": s.float_} | {
                f"sweep.{head}.layers.{layer}.{b}.predictions": c.predictions
                for layer, by_bits in s.layers.items()
                for b, c in by_bits.items()
            }
            for at, p in cells.items():
                if len(p) != n_val:
                    _fail(at, f"{len(p)} predictions for {n_val} val labels")
                _in_range(at, p, n)
            for layer, by_bits in s.layers.items():
                for b, c in by_bits.items():
                    if len(c.kl) != n:
                        _fail(f"sweep.{head}.layers.{layer}.{b}.kl", f"{len(c.kl)} entries for {n} classes")
        return self


class IntegerRun(_Model):
    """One head run by torch's integer kernels against its simulation (:func:`ltmpq.integer.compare`)."""

    n: Count
    agreement: Share
    sim_accuracy: Share
    int_accuracy: Share
    sim_per_class: list[Fraction]
    int_per_class: list[Fraction]
    per_class_difference: list[Maybe]
    max_abs_logit_difference: Finite


class Explain(_Downstream):
    """Chapter 5: integer runtime against simulation, and per-class curvature (columns of
    :func:`ltmpq.fairness.class_curvature`, one row per class with images), per head
    (:func:`ltmpq.runs.explain`)."""

    kind: Literal["explain"]
    integer: dict[str, IntegerRun]
    curvature: dict[str, dict[str, dict[str, list[Maybe]]]]
    seconds: dict[str, Seconds]
    quant: Free = {}
    explain: Free = {}

    @model_validator(mode="after")
    def _consistent(self):
        n = self.n_classes
        self._check_calibration()
        for h, r in self.integer.items():
            for col in ("sim_per_class", "int_per_class", "per_class_difference"):
                if len(getattr(r, col)) != n:
                    _fail(f"integer.{h}.{col}", f"{len(getattr(r, col))} entries for {n} classes")
        for images, by_head in self.curvature.items():
            for h, cols in by_head.items():
                at = f"curvature.{images}.{h}"
                _same_length({f"{at}.{c}": len(v) for c, v in cols.items()}, "rows")
                classes = cols.get("class", [])
                for i, c in enumerate(classes):
                    if c is None or c != int(c) or not 0 <= c < n:
                        _fail(f"{at}.class[{i}]", f"not a class of {n} (got {_shown(c)})")
        return self


class Recipe(_Trained):
    """Appendix: one recipe-search candidate's validation evaluation (:func:`ltmpq.recipe.run`);
    its throughput projects the model set's training time."""

    kind: Literal["recipe"]
    name: str
    history: list[Free]
    val: Evaluation
    split_sizes: dict[str, Count] = {}
    changes: Free = {}
    train_seconds: Seconds = None
    # the projection of the model set's time divides by it: null (NaN, no measurable training time)
    # would leave the appendix without a number
    train_images_per_second: Positive

    @model_validator(mode="after")
    def _consistent(self):
        vals = self.split_sizes.get("val")
        self.val.check("val", self.n_classes, vals, "validation images (split_sizes.val)")
        return self


#: The model of each kind of result.
MODELS: dict[str, type[_Result]] = {"stage1": Stage1, "decoupled": Decoupled, "quantized": Quantized,
                                    "mpq": MPQ, "explain": Explain, "recipe": Recipe}  # fmt: skip
assert tuple(MODELS) == KINDS


# ------------------------------------------------------------------ the one-line reason


def _path(loc: tuple | list) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
    return out


def _join(where: str, at: str) -> str:
    if not at:
        return where
    return where + at if at.startswith("[") or not where else f"{where}.{at}"


#: pydantic's error types, said the way :func:`problem` says its own.
_SAID = {
    "missing": "missing",
    "finite_number": "not a finite number ({input})",
    "int_type": "not an integer (got {input})",
    "float_type": "not a number (got {input})",
    "string_type": "not a string (got {input})",
    "bool_type": "not true or false (got {input})",
    "dict_type": "not an object (got {input})",
    "model_type": "not an object (got {input})",
    "list_type": "not a list (got {input})",
    "literal_error": "{input}, expected {expected}",
    "greater_than_equal": "{input}, at least {ge} expected",
    "greater_than": "{input}, more than {gt} expected",
    "less_than_equal": "{input}, at most {le} expected",
    "less_than": "{input}, less than {lt} expected",
    "too_short": "{actual_length} entries, at least {min_length} expected",
}


def _said(err: dict) -> str:
    """One pydantic error as one line: the field's path, then what is wrong with it."""
    ctx, where = err.get("ctx") or {}, _path(err["loc"])
    if err["type"] == "result":
        return f"{_join(where, ctx['at']) or 'result'}: {ctx['why']}"
    template = _SAID.get(err["type"])
    ctx = {k: f"{v:g}" if isinstance(v, float) else v for k, v in ctx.items()}  # 0, not 0.0
    try:
        why = template.format(input=_shown(err.get("input")), **ctx) if template else None
    except (KeyError, IndexError, ValueError):
        why = None
    return f"{where or 'result'}: {why or err['msg']}"


def _non_finite(payload: Any) -> str | None:
    """The first NaN or infinity anywhere in a parsed payload, as 'path: why' (None: there is none)."""
    try:  # the common case in C: a clean payload serialises; only a refused one is searched
        json.dumps(payload, allow_nan=False)
        return None
    except (ValueError, TypeError, RecursionError):
        pass
    stack: list[tuple[str, Any]] = [("", payload)]  # iterative: any nesting depth
    while stack:
        where, v = stack.pop()
        if isinstance(v, float) and not math.isfinite(v):
            return f"{where or 'result'}: not a finite number ({v!r})"
        if isinstance(v, dict):
            stack.extend((_join(where, str(k)), x) for k, x in reversed(v.items()))
        elif isinstance(v, list | tuple):
            stack.extend((f"{where}[{i}]", x) for i, x in reversed(list(enumerate(v))))
    return None


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array"}.get(
        type(v), "value"
    )


def problem(payload: object) -> str | None:
    """Why a parsed result cannot be read (one short line, naming the field path and what is
    wrong), or None when it follows the schema. Never raises for a JSON value."""
    if not isinstance(payload, dict):
        return f"not a result (a JSON {_json_type(payload)}, not an object)"
    schema = payload.get("schema")
    if "schema" not in payload:
        return "schema: missing"
    if type(schema) is not int or schema != SCHEMA:
        return f"schema: {_shown(schema)}, this code reads schema {SCHEMA}"
    kind = payload.get("kind")
    if not isinstance(kind, str) or kind not in MODELS:
        got = "missing" if "kind" not in payload else _shown(kind)
        return f"kind: {got}, expected one of {', '.join(KINDS)}"
    try:
        MODELS[kind].model_validate(payload)
    except ValidationError as exc:
        return _said(exc.errors(include_url=False)[0])
    # the parts the models leave free (configs, device, history, extra fields) hold numbers too
    return _non_finite(payload)


def validate(payload: object) -> dict:
    """``payload`` itself when it follows the schema, else :class:`ResultError` with its reason."""
    if (why := problem(payload)) is not None:
        raise ResultError(why)
    return payload  # type: ignore[return-value]  # problem() returns None only for a dict
