# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Winning the tail back
#
# **The question.** The blog's last question is whether the quantization process itself can
# mitigate the long tail. Chapter 4 tried one lever, giving the tail-sensitive layers more bits.
# A quantization researcher would try the field's other levers first: post-training methods
# stronger than rounding each weight to its nearest grid point — GPTQ {cite:p}`frantar2023gptq`
# and GPFQ {cite:p}`zhang2023gpfq`, which choose the quantized weights that best reproduce each
# layer's output on calibration images, bias correction and cross-layer equalization
# {cite:p}`nagel2019datafree` — the composition of those calibration images (long-tailed as the
# training set, class-balanced, or tail classes only), and the cheapest remedy of all: fit the
# long-tail fix (cRT, tau-norm, LWS, NCM, post-hoc logit adjustment) *after* quantization, on
# the quantized network's features, which costs seconds and no bits.
#
# **The answer here.** Each lever is compared with rounding to nearest at the same bit-widths, on
# the same {glue:text}`n_seeds` networks at IF {glue:text}`f_main` ({glue:text}`data_note`), for
# the blog's decoupled classifier (cRT), by claim 4's rule: the lever *wins the tail back* when
# tail accuracy rises (two-sided 95% interval over seeds above zero) while overall accuracy falls
# by less than {glue:text}`almost_no_cost` points. Levers that do: **{glue:text}`winners`**.
# At {glue:text}`low_bits` bits, GPTQ changes tail accuracy by {glue:text}`gptq_tail_low` and
# overall accuracy by {glue:text}`gptq_overall_low` points; re-fitting cRT after quantization
# changes them by {glue:text}`after_tail_low` and {glue:text}`after_overall_low`. Brevitas's
# own rounding reproduces the book's quantizer exactly ({glue:text}`brevitas_check`).
#
# *Rerun this chapter* with your own parameters, e.g. `make chapter CHAPTER=07_mitigations
# PARAMS="-p seeds '[0, 1]'"`; the cell below lists them.

# %% tags=["parameters", "hide-cell"]
profile = "cpu"  # which stored results to show: smoke | cpu
compute = False  # True: produce missing runs (the book build never does)
imbalance_factor = 0.01  # where the mitigations ran
seeds = None  # None: the profile's seeds, e.g. [0, 1, 2]
rule_k = 8  # chapter 4's rule shown beside them: layers at the high bit-width

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from IPython.display import display

from ltmpq import load, plotting, tables, verdicts
from ltmpq.analysis import ch7_mitigations as ch7
from ltmpq.params import FamiliesParams

params = FamiliesParams(profile, compute, (imbalance_factor,), seeds, rule_k)
plotting.setup()
qres, mres = load.mitigation_results(params)
f = ch7.frame(qres)
p = ch7.paired(f)
bits = [str(b) for b in params.prof.mitigation_bits or params.prof.quant_bits]
low = bits[-1]
table = ch7.verdict_table(p, bits)
tables.glue_all(
    {
        "n_seeds": str(len(qres["default"])),
        "f_main": f"{imbalance_factor:g}",
        "data_note": load.data_note(qres["default"]),
        "almost_no_cost": f"{verdicts.ALMOST_NO_COST:g}",
        "winners": ch7.winners_text(ch7.winners(p, bits)),
        "low_bits": low,
        "gptq_tail_low": ch7.change(p, "GPTQ", low, "tail"),
        "gptq_overall_low": ch7.change(p, "GPTQ", low, "overall"),
        "after_tail_low": ch7.change(p, ch7.REBALANCED, low, "tail"),
        "after_overall_low": ch7.change(p, ch7.REBALANCED, low, "overall"),
        "brevitas_check": ch7.same_as_reference(p),
        "rule_k": str(rule_k),
    }
)
tables.download(table, "07_mitigations_verdicts")
display(tables.table(table, scroll=True))

# %% [markdown]
# Each cell: the change against rounding to nearest at the same bits (points, mean [two-sided 95%
# interval] over seeds, paired on the same networks), and whether the lever wins the tail back.
# "Re-balanced after quantization" quantizes the backbone with rounding to nearest, then refits
# cRT on its features (its epoch chosen on the validation split, as in chapter 2) and quantizes
# the refitted classifier at the same bits; the other rows quantize the backbone differently and
# keep chapter 2's cRT. In every row the classifier itself is quantized by rounding to nearest:
# the stronger methods act on the layers before it.
#
# ## Accuracy against average bits
#
# One panel per metric (test set; whiskers: 95% intervals over seeds). The mixed-precision
# points are chapter 4's rule at k = {glue:text}`rule_k` on the same networks (norm- and
# tail-driven), at their average weight bits.

# %% tags=["hide-input"]
mp = ch7.mpq_frame(mres, rule_k)
both = ch7.summary(f[f["bits"] != "float"])
both = both if mp.empty else pd.concat([both, ch7.summary(mp)], ignore_index=True)
metrics = ["tail", "worst_class", "overall"]
fig, axes = plt.subplots(1, 3, figsize=(13, 4), sharex=True)
names = list(dict.fromkeys(both["mitigation"]))
palette = dict(zip(names, sns.color_palette("tab20", len(names)), strict=True))
for ax, metric in zip(axes, metrics, strict=True):
    d = both[both["metric"] == metric]
    for name, g in d.groupby("mitigation", sort=False):
        g = g.sort_values("average_bits")
        style = dict(marker="D", ls="none") if "MPQ" in name else dict(marker="o", lw=1)
        ax.errorbar(g["average_bits"], g["mean"], yerr=g["ci"].fillna(0), label=name, color=palette[name],
                    capsize=2, ms=4, **style)  # fmt: skip
    ax.set(title=metric.replace("_", " "), xlabel="average weight bits", ylabel="test accuracy (%)")
handles, labels = axes[0].get_legend_handles_labels()
fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize="small")
fig.suptitle(f"cRT classifier, IF = {imbalance_factor:g}")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## What each lever costs
#
# Seconds per quantized network (quantizing it and evaluating the validation and test splits),
# mean over bit-widths and seeds, on the machine that ran it. GPTQ and GPFQ run one calibration
# pass per layer; re-balancing after quantization adds the training images' features and
# chapter 2's refits.

# %% tags=["hide-input"]
cost = ch7.costs(qres)
tables.download(cost.set_index("mitigation"), "07_mitigations_cost")
tables.table(cost.set_index("mitigation"), scroll=True)

# %% [markdown]
# {download}`Verdicts as CSV <data/07_mitigations_verdicts.csv>` ·
# {download}`Costs as CSV <data/07_mitigations_cost.csv>`
#
# ## What this does and does not settle
#
# The comparison is on one model family and one dataset copy, at one imbalance factor, with
# weights quantized and activations in floating point; the calibration sets hold the same number
# of images whatever their composition.
