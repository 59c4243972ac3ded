"""ltmpq.schema: every committed result follows the declared schema, and a damaged result is refused
with one line that names the field (built by damaging copies of small committed results)."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys

import pytest

from ltmpq import schema
from ltmpq.paths import ROOT

COMMITTED = sorted(ROOT.glob("results/*/*/*.json"))

#: One small committed result of each kind to damage: the smallest file of its folder (holding
#: predictions for quantized: most sweeps keep none).
SAMPLES = {
    "stage1": ("results/smoke/stage1", ""),
    "decoupled": ("results/smoke/decoupled", ""),
    "quantized": ("results/cpu/quantized", '"predictions"'),
    "mpq": ("results/cpu/mpq", ""),
    "explain": ("results/cpu/explain", ""),
    "recipe": ("results/cpu/recipe", ""),
}


@pytest.fixture(scope="module")
def texts() -> dict[str, str]:
    """Each sample's text, read once; a test parses its own copy to damage."""
    out = {}
    for kind, (folder, holding) in SAMPLES.items():
        files = sorted((ROOT / folder).glob("*.json"), key=lambda p: (p.stat().st_size, p.name))
        found = next((t for t in (f.read_text() for f in files) if holding in t), None)
        if found is None:
            pytest.skip(f"no committed {kind} result under {folder}")
        out[kind] = found
    return out


def test_every_committed_result_follows_the_schema():
    assert len(COMMITTED) >= 16, "the committed results are missing"
    refused = {}
    for path in COMMITTED:
        if (why := schema.problem(json.loads(path.read_text()))) is not None:
            refused[str(path.relative_to(ROOT))] = why
    assert not refused


def test_the_samples_follow_the_schema(texts):
    for kind, text in texts.items():
        payload = json.loads(text)
        assert payload["kind"] == kind and schema.problem(payload) is None
        assert schema.validate(payload) is payload


# ------------------------------------------------------------------ damage, and the reason given


def _first_bits(p: dict) -> str:
    return next(k for k in p["entries"] if k != "float")


def _cell(p: dict) -> dict:
    """The first single-layer sweep cell of an mpq result."""
    layers = next(iter(p["sweep"].values()))["layers"]
    return next(iter(next(iter(layers.values())).values()))


def _set(path: str, value):
    """A damage: set the field at dotted ``path`` (a number indexes a list) to ``value``."""

    def damage(p: dict) -> None:
        *parents, last = path.split(".")
        for k in parents:
            p = p[int(k)] if isinstance(p, list) else p[k]
        p[int(last) if isinstance(p, list) else last] = value

    return damage


def _short(ev: dict) -> None:
    ev["predictions"] = ev["predictions"][:-1]


def _fewer_classes(p: dict) -> None:
    """A quantized result of 9 classes whose predictions still name class 9."""
    p["train_counts"] = p["train_counts"][:9]
    if p.get("calibration_counts") is not None:
        p["calibration_counts"] = p["calibration_counts"][:9]
    for e in p["entries"].values():
        for m in e["methods"].values():
            for ev in m.values():
                ev["per_class"] = ev["per_class"][:9]


def _digit(p: dict, c: str) -> None:
    ev = p["entries"]["float"]["methods"]["crt"]["test"]
    ev["predictions"] = c + ev["predictions"][1:]


DAMAGES = [
    # numbers that are not finite, wherever they are (JSON NaN / Infinity parse in Python)
    ("stage1", _set("val.metrics.overall", float("nan")), "val.metrics.overall: not a finite number (nan)"),
    ("stage1", _set("test.per_class.3", float("nan")), "test.per_class[3]: not a finite number (nan)"),
    ("stage1", _set("provenance.wall_seconds", float("inf")),
     "provenance.wall_seconds: not a finite number (inf)"),
    ("stage1", _set("provenance.config.lr", float("-inf")),
     "provenance.config.lr: not a finite number (-inf)"),
    ("stage1", lambda p: p["history"][0].update(loss=float("nan")), "history[0].loss: not a finite number"),
    ("stage1", _set("added_later", {"x": [1.0, float("nan")]}), "added_later.x[1]: not a finite number"),
    ("quantized", _set("entries.float.methods.crt.val.metrics.tail", float("nan")),
     "entries.float.methods.crt.val.metrics.tail: not a finite number (nan)"),
    ("mpq", lambda p: _cell(p)["kl"].__setitem__(2, float("inf")), ".kl[2]: not a finite number (inf)"),
    ("mpq", lambda p: p["allocations"][1]["val"]["metrics"].update(overall=float("nan")),
     "allocations[1].val.metrics.overall: not a finite number"),
    ("explain", lambda p: p["curvature"]["val"]["crt"]["trace"].__setitem__(0, float("nan")),
     "curvature.val.crt.trace[0]: not a finite number"),
    ("recipe", _set("train_seconds", float("inf")), "train_seconds: not a finite number"),
    # predictions of the wrong length
    ("stage1", lambda p: _short(p["test"]), "test.predictions: 999 predictions for 1000 test labels"),
    ("stage1", lambda p: _short(p["val"]), "val.predictions: 999 predictions for 1000 validation images"),
    ("decoupled", lambda p: _short(p["methods"]["lws"]["test"]),
     "methods.lws.test.predictions: 999 predictions"),
    ("quantized", lambda p: _short(p["entries"][_first_bits(p)]["methods"]["crt"]["test"]),
     "methods.crt.test.predictions: 9999 predictions"),
    ("quantized", lambda p: [_short(m["test"]) for m in p["entries"]["float"]["methods"].values()],
     "entries.float.methods.baseline.test.predictions: 9999 predictions"),
    ("mpq", lambda p: _short(p["allocations"][3]["test"]),
     "allocations[3].test.predictions: 9999 predictions for 10000 test labels"),
    ("mpq", lambda p: _short(_cell(p)), ".predictions: 2999 predictions for 3000 val labels"),
    ("mpq", lambda p: p["sweep"]["crt"].update(float=p["sweep"]["crt"]["float"][:-1]),
     "sweep.crt.float: 2999 predictions for 3000 val labels"),
    ("mpq", lambda p: p["allocations"][0]["test"].pop("predictions"),
     "allocations[0].test.predictions: missing"),
    ("recipe", lambda p: _short(p["val"]), "val.predictions: 2999 predictions for 3000 validation images"),
    # predictions of the wrong alphabet
    ("quantized", lambda p: _digit(p, "x"), "entries.float.methods.crt.test.predictions: 'x' at position 0"),
    ("quantized", lambda p: _digit(p, "-"), "'-' at position 0 is not a class digit"),
    ("mpq", lambda p: p.update(val_labels=p["val_labels"][:-1] + "a"), "val_labels: 'a' at position 2999"),
    ("stage1", _set("test.predictions.5", "x"), "test.predictions[5]: not a class label (got 'x')"),
    ("stage1", _set("test.predictions.5", -1), "test.predictions[5]: not a class label (got -1)"),
    ("stage1", _set("test.predictions.5", True), "test.predictions[5]: not a class label (got true)"),
    ("stage1", _set("test.predictions", 7), "test.predictions: neither a string of class digits nor a list"),
    # a class beyond the result's classes
    ("stage1", _set("test.predictions.5", 10), "test.predictions: class 10 of 10"),
    ("stage1", _set("test_labels.0", 12), "test_labels: class 12 of 10"),
    ("quantized", _fewer_classes, "test.predictions: class 9 of 9"),
    ("decoupled", lambda p: p["methods"]["crt"]["val"]["predictions"].__setitem__(0, 11),
     "methods.crt.val.predictions: class 11 of 10"),
    # digests and hashes
    ("stage1", lambda p: p.update(weights_sha256=p["weights_sha256"][:63]),
     "weights_sha256: not a SHA-256 hex digest (63 characters, 64 expected)"),
    ("stage1", lambda p: p.update(weights_sha256=p["weights_sha256"].upper()),
     "weights_sha256: not a SHA-256 hex digest"),
    ("stage1", _set("weights_sha256", "z" * 64),
     "weights_sha256: not a SHA-256 hex digest (not lowercase hex"),
    ("stage1", _set("weights_sha256", None), "weights_sha256: not a string (got null)"),
    ("decoupled", _set("classifiers_sha256", "ab"), "classifiers_sha256: not a SHA-256 hex digest"),
    ("quantized", _set("weights_sha256", 12), "weights_sha256: not a string (got 12)"),
    ("stage1", _set("provenance.data_source.sha256", "0" * 65),
     "provenance.data_source.sha256: not a SHA-256"),
    ("stage1", _set("config_hash", "ABCDEF012345"), "config_hash: not a config hash (not lowercase hex"),
    ("stage1", _set("config_hash", "abc"), "config_hash: not a config hash (3 characters, 12 expected)"),
    # header: schema, kind, stage version
    ("stage1", _set("stage_version", 0), "stage_version: 0, at least 1 expected"),
    ("stage1", _set("stage_version", "1"), "stage_version: not an integer (got '1')"),
    ("stage1", _set("stage_version", True), "stage_version: not an integer (got true)"),
    ("stage1", _set("stage_version", 1.0), "stage_version: not an integer (got 1.0)"),
    ("stage1", _set("schema", 2), "schema: 2, this code reads schema 1"),
    ("stage1", _set("schema", "1"), "schema: '1'"),
    ("stage1", lambda p: p.pop("schema"), "schema: missing"),
    ("stage1", _set("kind", "stage3"), "kind: 'stage3', expected one of stage1, decoupled"),
    ("stage1", _set("kind", ["stage1"]), "kind: a list of 1, expected one of"),
    ("stage1", _set("kind", "decoupled"), "methods: missing"),
    ("stage1", _set("imbalance_factor", "0.1"), "imbalance_factor: not a number (got '0.1')"),
    ("stage1", _set("imbalance_factor", 0.0), "imbalance_factor: 0.0, more than 0 expected"),
    ("stage1", _set("seed", -1), "seed: -1, at least 0 expected"),
    ("stage1", _set("profile", None), "profile: not a string (got null)"),
    ("decoupled", _set("stage1_hash", None), "stage1_hash: not a string (got null)"),
    # provenance
    ("stage1", lambda p: p.pop("provenance"), "provenance: missing"),
    ("stage1", lambda p: p["provenance"].pop("data_source"), "provenance.data_source: missing"),
    ("stage1", lambda p: p["provenance"].pop("config"), "provenance.config: missing"),
    ("stage1", _set("provenance.device", "cpu"), "provenance.device: not an object (got 'cpu')"),
    ("stage1", _set("provenance.wall_seconds", -1.0), "provenance.wall_seconds: -1.0, at least 0 expected"),
    # classes and per-class lists
    ("stage1", _set("train_counts", [5]), "train_counts: 1 class, at least 2 expected"),
    ("stage1", _set("train_counts.2", -1), "train_counts[2]: -1, at least 0 expected"),
    ("stage1", _set("train_counts.2", 3.0), "train_counts[2]: not an integer (got 3.0)"),
    ("stage1", lambda p: p["test"]["per_class"].pop(), "test.per_class: 9 entries for 10 classes"),
    ("stage1", _set("test.per_class.0", 1.5), "test.per_class[0]: 1.5, at most 1 expected"),
    ("stage1", _set("val.metrics.overall", -0.5), "val.metrics.overall: -0.5, at least 0 expected"),
    ("explain", _set("integer.crt.agreement", None), "integer.crt.agreement: not a number (got null)"),
    ("stage1", lambda p: p["test"]["confusion"].pop(), "test.confusion: not 10 x 10"),
    ("stage1", lambda p: p["split_sizes"].update(test=999), "test_labels: 1000 labels for 999 test images"),
    ("decoupled", lambda p: p["methods"]["ncm"]["val"]["per_class"].append(0.5),
     "methods.ncm.val.per_class: 11 entries for 10"),
    ("decoupled", lambda p: p["stage1_classifier"]["bias"].pop(),
     "stage1_classifier.bias: 9 entries for 10 classes"),
    ("quantized", lambda p: p["entries"]["float"]["methods"]["lws"]["test"]["per_class"].pop(),
     "entries.float.methods.lws.test.per_class: 9 entries for 10 classes"),
    ("mpq", lambda p: p["allocations"][0]["val"]["per_class"].pop(),
     "allocations[0].val.per_class: 9 entries"),
    ("mpq", lambda p: _cell(p)["kl"].pop(), ".kl: 9 entries for 10 classes"),
    ("explain", lambda p: p["integer"]["crt"]["int_per_class"].pop(),
     "integer.crt.int_per_class: 9 entries for 10"),
    ("explain", lambda p: p["curvature"]["val"]["crt"]["trace"].pop(), "curvature.val.crt.trace: 9 rows"),
    ("recipe", lambda p: p["val"]["per_class"].pop(), "val.per_class: 9 entries for 10 classes"),
    # other kind-specific rules
    ("quantized", lambda p: p["entries"].pop("float"), "entries: no 'float' entry"),
    ("quantized", lambda p: p["entries"].update({"17": p["entries"]["float"]}),
     "entries.17: not a bit-width"),
    ("quantized", _set("entries.float.bit_map.L1", 1),
     "entries.float.bit_map.L1: not a bit-width in [2, 16]"),
    ("quantized", lambda p: p["entries"][_first_bits(p)]["methods"].pop("ncm"),
     ".methods: ['baseline', 'crt'"),
    ("quantized", _set("entries", {}), "entries: 0 entries, at least 1 expected"),
    ("mpq", lambda p: p["hessians"]["crt"]["hessian"]["L1"].pop("trace"),
     "hessians.crt.hessian.L1.trace: missing"),
    ("mpq", _set("layer_params.L1", -5), "layer_params.L1: -5, at least 0 expected"),
    ("recipe", _set("train_images_per_second", 0.0), "train_images_per_second: 0.0, more than 0"),
    ("explain", _set("seconds.integer", -1.0), "seconds.integer: -1.0, at least 0 expected"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "damage", "why"), DAMAGES, ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(DAMAGES)]
)
def test_a_damaged_result_is_refused_naming_the_field(texts, kind, damage, why):
    payload = json.loads(texts[kind])
    damage(payload)
    said = schema.problem(payload)
    assert said is not None and "\n" not in said and len(said) < 200, said
    assert why in said
    with pytest.raises(schema.ResultError, match=re.escape(said)):
        schema.validate(payload)


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (None, "not a result (a JSON null, not an object)"),
        ([], "not a result (a JSON array, not an object)"),
        ([{"schema": 1}], "not a result (a JSON array, not an object)"),
        ("stage1", "not a result (a JSON string, not an object)"),
        (1.5, "not a result (a JSON number, not an object)"),
        (True, "not a result (a JSON boolean, not an object)"),
        ({}, "schema: missing"),
        ({"schema": 1}, "kind: missing"),
        ({"schema": 1, "kind": {}}, "kind: an object"),
        ({"schema": 1, "kind": "stage1"}, "config_hash: missing"),
    ],
)
def test_what_is_no_result_at_all(payload, why):
    said = schema.problem(payload)
    assert said is not None and why in said


def test_what_old_and_future_results_may_lack_or_add(texts):
    """Null where the writers store it (an empty group, a class without images), no stage version
    (version 1), no digests before weights were published, fields a later version adds."""
    p = json.loads(texts["stage1"])
    p["val"]["metrics"]["few"] = None
    p["test"]["per_class"][0] = None
    p["provenance"]["data_source"] = None
    for key in ("stage_version", "weights_sha256", "history", "train_seconds"):
        p.pop(key)
    p["added_later"] = {"anything": [1, "two", None]}
    assert schema.problem(p) is None
    q = json.loads(texts["quantized"])
    q["classifiers_sha256"] = None  # copied from a decoupled result that lacks it
    q["calibration_counts"] = None
    assert schema.problem(q) is None
    m = json.loads(texts["mpq"])
    m["val_labels"] = [int(c) for c in m["val_labels"]]  # encode_predictions' list form (over 10 classes)
    _cell(m)["kl"][0] = None
    assert schema.problem(m) is None


def test_problem_never_raises_on_damaged_json(texts):
    """Random values at random places of real results, and deep nesting: always a line or None."""
    rng = random.Random(0)
    values = [None, True, 0, -1, 1.5, float("nan"), "", "x", "ab" * 32, [], {}, [None], {"": 1}, [[1]]]
    for kind in ("stage1", "decoupled", "explain"):
        for _ in range(60):
            p = json.loads(texts[kind])
            node = p
            for _depth in range(rng.randint(1, 6)):
                keys = list(node) if isinstance(node, dict) else list(range(len(node)))
                if not keys:
                    break
                key = rng.choice(keys)
                if not isinstance(node[key], dict | list) or rng.random() < 0.3:
                    node[key] = rng.choice(values)
                    break
                node = node[key]
            said = schema.problem(p)
            assert said is None or (isinstance(said, str) and "\n" not in said)
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    p = json.loads(texts["stage1"])
    p["provenance"]["config"]["deep"] = deep
    assert schema.problem(p) is None
    deep[0] = float("nan")  # the innermost list of the outermost: found without recursion
    assert schema.problem(p).startswith("provenance.config.deep[0]: not a finite number")


def test_the_schema_imports_without_torch():
    code = "import sys; sys.modules['torch'] = None; import ltmpq.schema"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
