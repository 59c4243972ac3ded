"""The table of every run: one row per evaluated classifier, the stored numbers in percent, the
missing runs listed, a damaged result refused."""

from __future__ import annotations

import pandas as pd
import pytest
from fakes import save_fake

from ltmpq import plan, results, runtable
from ltmpq.config import get_profile


def _model_runs(seed: int = 0) -> list[plan.Run]:
    return plan.unique(plan.grid("smoke", [0.01], [seed], ["stage1", "decoupled", "quantized"]))


def test_every_stored_run_gives_one_row_per_method_and_bit_width():
    runs = _model_runs()
    stored = {r.id: save_fake(r, seed=i) for i, r in enumerate(runs)}
    table, missing = runtable.run_table("smoke", runs)
    assert list(table.columns) == list(runtable.COLUMNS) and missing == []
    s1 = table[table["kind"] == "stage1"]
    assert s1[["method", "bits"]].values.tolist() == [["baseline", "float"]]
    methods = get_profile("smoke").decouple.methods[1:]
    dec = table[table["kind"] == "decoupled"]
    assert sorted(dec["method"]) == sorted(methods)
    for run in runs:
        rows = table[table["config_hash"] == stored[run.id]["config_hash"]]
        if run.kind == "quantized":
            bits = ["float", *map(str, run.config.bits)]
            assert len(rows) == len(bits) * (1 + len(methods)), run.key
            # the oracle: the stored fraction, in percent
            e = stored[run.id]["entries"][bits[-1]]["methods"]["crt"]["test"]["metrics"]
            row = rows[(rows["bits"] == bits[-1]) & (rows["method"] == "crt")].iloc[0]
            assert row["tail"] == pytest.approx(100 * e["tail"]) and row["variant"] == run.variant
            assert row["worst_class"] == pytest.approx(100 * e["worst_class"])
        assert set(rows["run"]) == {run.key} and set(rows["seed"]) == {0}
        assert set(rows["imbalance_factor"]) == {0.01} and set(rows["arch"]) == {"vgg16"}


def test_runs_not_stored_are_listed_not_invented():
    runs = _model_runs()
    save_fake(runs[0])
    table, missing = runtable.run_table("smoke", runs)
    assert set(table["kind"]) == {"stage1"} and missing == runs[1:]
    empty, missing = runtable.run_table("smoke", runs[1:])
    assert empty.empty and list(empty.columns) == list(runtable.COLUMNS) and len(missing) == len(runs) - 1


def test_a_damaged_result_is_an_error_not_a_gap():
    runs = _model_runs()
    save_fake(runs[0])
    runs[0].path("smoke").write_text("{not json")
    with pytest.raises(results.ResultError, match="unreadable"):
        runtable.run_table("smoke", runs[:1])


def test_mixed_precision_rows_name_the_allocation():
    alloc = {"head": "crt", "kind": "rule", "metric": "tail", "k": 8, "average_bits": 4.9,
             "test": {"metrics": {"overall": 0.5, "tail": 0.25}}}  # fmt: skip
    (row,) = runtable._evaluated({"kind": "mpq", "allocations": [alloc]})
    assert (row["method"], row["bits"], row["allocation"], row["k"]) == ("crt", "mixed", "tail-driven", 8)
    assert row["tail"] == 25.0 and pd.isna(row["head"])  # a metric the result lacks is missing, not 0
    assert runtable._evaluated({"kind": "explain"}) == []
