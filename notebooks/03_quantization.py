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
# # Quantization: do fewer bits hurt the tail more?
#
# The blog's section 3.3 quantizes the weights of the baseline and of the decoupled model at
# IF 0.01 and reports (its Figs. 7 and 8) that going from 32 to 6 bits costs the baseline 0.5
# points on the head classes and 6.5 on the tail, and the decoupled model 2.7 and 6.6. Its
# claim: **lower bit-widths hurt tail classes much more than head classes.** It does not say how
# it quantized. This chapter states the quantizer, sweeps the bit-width for every model of
# chapters 1 and 2 over seeds, tests the claim on paired predictions, asks *which* images
# change their prediction, and ablates each quantizer choice the blog left open.

# %% tags=["parameters"]
profile = "cpu"  # which stored results to show: smoke | cpu | paper
compute = False  # True: produce missing runs (the book build never does)
imbalance_factors = None  # None: the profile's imbalance factors, e.g. [0.1, 0.02, 0.01]
seeds = None  # None: the profile's seeds, e.g. [0, 1, 2]
variants = None  # None: all quantizer variants (ltmpq.config.QUANT_ABLATIONS), e.g. ["default"]
n_boot = 2000  # bootstrap resamples of the test images for the paired tests

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from IPython.display import display
from myst_nb import glue

from ltmpq import blog, plotting, report, stats, verdicts
from ltmpq.data import CLASSES, DataNotFoundError, blog_head_tail, load_cifar10
from ltmpq.decoupling import METHOD_LABELS, METHODS
from ltmpq.quantization import FLOAT

params = report.ChapterParams(profile, compute, imbalance_factors, seeds)
plotting.setup()
s1 = report.stage1_results(params)
dec = report.decoupled_results(params)
names = ["default"] + [v for v in (variants or list(params.prof.quant_configs())) if v != "default"]
qres = report.quantized_results(params, names)
default = qres["default"]
qcfg = params.prof.quant_configs(["default"])["default"]
frame = report.quant_frame(qres)
drops = report.drop_frame(frame)
ifs = sorted({c.imbalance_factor for c in s1}, reverse=True)
f_lo = min(ifs)
bits = report.bits_order(frame["bits"].unique())
qbits = [b for b in bits if b != FLOAT]
groups = blog_head_tail()
head, tail = list(groups["head"]), list(groups["tail"])
n_seeds = len({c.seed for c in s1})
glue("data_note", report.data_note(s1), display=False)
glue("bits_list", ", ".join(qbits), display=False)
glue("n_seeds", n_seeds, display=False)
glue("if_lo", f"{f_lo:g}", display=False)
glue(
    "granularity",
    "one scale per output channel" if qcfg.granularity == "channel" else "one scale per layer",
    display=False,
)
glue(
    "clipping",
    "the largest magnitude" if qcfg.clipping == "minmax" else "an MSE-optimal clipping",
    display=False,
)
glue("n_variants", len(qres) - 1, display=False)
glue("n_boot", n_boot, display=False)

# %% [markdown]
# ## The quantizer
#
# Post-training, simulated ("fake") quantization: the weights are rounded to an integer grid
# and multiplied back by their scale, so the model runs in float32 but with exactly the weight
# values an integer kernel would hold. For a layer at $b$ bits,
#
# $$ \hat w = s \cdot \operatorname{clamp}\!\left(\operatorname{round}(w / s),\,
#    -2^{b-1},\, 2^{b-1}-1\right), \qquad s = \frac{\max |w|}{2^{b-1}-1}, $$
#
# signed and symmetric (zero is exactly representable), with {glue:text}`granularity` and the
# scale set by {glue:text}`clipping`; rounding is torch's own `fake_quantize_per_channel_affine`
# (half to even). Before quantizing, every BatchNorm is folded into the convolution before it,
# as an integer inference engine would {cite:p}`jacob2018quantization`; biases (including the
# folded BatchNorm shift) stay in float32. {cite:t}`nagel2021white` discuss each of these choices.
# All 16 weight layers L1–L16 are quantized, the first and the last included. The decoupled
# classifiers of chapter 2 share the stage-1 backbone: each is written as one linear map on the
# penultimate features (LWS with its per-class scales folded into the rows, NCM with its class
# means as rows) and quantized as L16 at the same bit-width. So the backbone's quantized
# features are computed once per run and bit-width, and every classifier reads them. Activations
# stay in float unless an ablation below says otherwise. A per-layer bit-width map
# (`ltmpq.quantization.bit_map`) describes every quantized model; here all layers share one
# bit-width, and chapter 4 mixes them.
#
# Bit-widths: float (32), {glue:text}`bits_list`. Every number is percent on the balanced test
# set of {glue:text}`data_note`, mean ± 95% t-interval over {glue:text}`n_seeds` seeds (one
# stage-1 model per seed).
#
# ## Accuracy against bit-width

# %% tags=["hide-input"]
test_default = frame[frame["variant"] == "default"]
show = ["head", "tail", "worst_class"]
fig, axes = plt.subplots(
    len(show), len(ifs), figsize=(3.6 * len(ifs), 2.6 * len(show)), sharex=True, sharey="row", squeeze=False
)
order = [METHOD_LABELS[m] for m in METHODS]
for j, f in enumerate(ifs):
    for i, metric in enumerate(show):
        ax = axes[i][j]
        d = test_default[(test_default["imbalance_factor"] == f) & (test_default["metric"] == metric)]
        d = d.assign(method=d["method"].map(METHOD_LABELS))
        sns.pointplot(
            d,
            x="bits",
            y="value",
            hue="method",
            order=bits,
            hue_order=order,
            errorbar=plotting.t_interval,
            dodge=0.4,
            markersize=3,
            linewidth=1.2,
            ax=ax,
        )
        ax.set_title(f"IF = {f:g}" if i == 0 else "")
        ax.set_ylabel(f"{metric.replace('_', '-')} acc. (%)" if j == 0 else "")
        ax.set_xlabel("weight bits" if i == len(show) - 1 else "")
        if (i, j) != (len(show) - 1, 0):
            ax.get_legend().remove()
axes[-1][0].legend(fontsize="small", ncols=5, loc="upper left", bbox_to_anchor=(0, -0.35))
fig.suptitle("Test accuracy of every model as its weights lose bits (95% CI over seeds)", y=1.0)
plt.show()

# %% [markdown]
# The full table (mean ± 95% CI over seeds; worst = the lowest per-class accuracy):

# %% tags=["hide-input", "hide-output"]
summary = report.summarize(
    test_default.assign(split="test"), by=("imbalance_factor", "method", "bits", "split", "metric")
)
labelled = summary.assign(method=summary["method"].map(METHOD_LABELS))
report.table(
    report.wide(
        labelled, ["overall", "head", "tail", "worst_class"], index=("imbalance_factor", "method", "bits")
    )
)

# %% [markdown]
# ## The blog's Figs. 7 and 8 beside ours
#
# The blog reports head and tail accuracy at IF 0.01 for the baseline and the decoupled model
# (cRT) at 32, 8 and 6 bits. The same cells from our runs, with the difference (ours - blog):

# %% tags=["hide-input"]
f_blog = 0.01 if 0.01 in ifs else f_lo
cell = summary[(summary["imbalance_factor"] == f_blog)].set_index(["method", "bits", "metric"])
rows = []
for (method, b), published in blog.FIG7_8.items():
    key = FLOAT if b == 32 else str(b)
    for metric in ("head", "tail"):
        have = (method, key, metric) in cell.index
        mean, ci = cell.loc[(method, key, metric), ["mean", "ci"]] if have else (np.nan, np.nan)
        rows.append(
            {
                "model": METHOD_LABELS[method],
                "bits": "float (32)" if b == 32 else str(b),
                "metric": metric,
                "blog": published[metric],
                "ours": report.pm(mean, ci) if have else "—",
                "difference": mean - published[metric],
            }
        )
fig78 = pd.DataFrame(rows).set_index(["model", "metric", "bits"])
report.table(fig78)

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharey=True)
d = test_default[test_default["imbalance_factor"] == f_blog]
for ax, method in zip(axes, ("baseline", "crt"), strict=True):
    series = {
        metric: [
            d[(d["method"] == method) & (d["metric"] == metric) & (d["bits"] == b)]["value"].to_numpy()
            for b in bits
        ]
        for metric in ("head", "tail")
    }
    published = {
        metric: [blog.FIG7_8.get((method, 32 if b == FLOAT else int(b)), {}).get(metric) for b in bits]
        for metric in ("head", "tail")
    }
    plotting.grouped_bars(ax, ["float" if b == FLOAT else f"{b}-bit" for b in bits], series, published)
    ax.set_title(f"{METHOD_LABELS[method]}, IF = {f_blog:g}")
    ax.set_ylim(0, 100)
axes[1].set_ylabel("")
axes[1].get_legend().remove()
fig.suptitle("Figs. 7/8: head and tail accuracy against weight bits (bars: ours, diamonds: blog)", y=1.02)
plt.show()

# %% tags=["hide-input"]
dd = drops[(drops["variant"] == "default") & (drops["imbalance_factor"] == f_blog)]
blog_drop = {
    m: {k: blog.FIG7_8[(m, 32)][k] - blog.FIG7_8[(m, 6)][k] for k in ("head", "tail")}
    for m in ("baseline", "crt")
}
b6 = "6" if "6" in qbits else qbits[len(qbits) // 2]
for m in ("baseline", "crt"):
    for k in ("head", "tail"):
        vals = dd[(dd["method"] == m) & (dd["metric"] == k) & (dd["bits"] == b6)]["drop"].to_numpy()
        mean, half, _ = stats.mean_ci(vals)
        glue(f"drop6_{m}_{k}", report.pm(mean, half), display=False)
        glue(f"blog_drop6_{m}_{k}", f"{blog_drop[m][k]:.1f}", display=False)
glue("b6", b6, display=False)
glue("f_blog", f"{f_blog:g}", display=False)
mean_drop = (
    drops[(drops["variant"] == "default") & (drops["metric"] == "overall")]
    .groupby(["imbalance_factor", "method", "bits"])["drop"]
    .mean()
)
glue("max_drop_8", f"{mean_drop.xs('8', level='bits').max():.1f}" if "8" in qbits else "n/a", display=False)
glue("max_drop_b6", f"{mean_drop.xs(b6, level='bits').max():.1f}", display=False)
tail6 = (
    drops[
        (drops["imbalance_factor"] == f_blog)
        & (drops["metric"] == "tail")
        & (drops["bits"] == b6)
        & drops["method"].isin(["baseline", "crt"])
    ]
    .groupby(["variant", "method"])["drop"]
    .mean()
)
worst6 = tail6.idxmax()
glue("worst6_drop", f"{tail6.max():.1f}", display=False)
glue("worst6_where", f"{worst6[0]}, {METHOD_LABELS[worst6[1]]}", display=False)

# %% [markdown]
# From float to {glue:text}`b6` bits at IF = {glue:text}`f_blog`, our baseline loses
# {glue:text}`drop6_baseline_head` points on the head and {glue:text}`drop6_baseline_tail` on the
# tail (blog: {glue:text}`blog_drop6_baseline_head` and {glue:text}`blog_drop6_baseline_tail`);
# the cRT model loses {glue:text}`drop6_crt_head` and {glue:text}`drop6_crt_tail` (blog:
# {glue:text}`blog_drop6_crt_head` and {glue:text}`blog_drop6_crt_tail`). Our models are narrower
# than the blog's (chapter 1), so their absolute accuracies differ; what can be compared is the
# *drop*. Over all imbalance factors and models, the largest mean drop of overall accuracy is
# {glue:text}`max_drop_8` points at 8 bits and {glue:text}`max_drop_b6` at {glue:text}`b6` bits
# with our default quantizer. Across all {glue:text}`n_variants` ablated quantizers below as
# well, the largest mean tail drop at {glue:text}`b6` bits for the baseline or cRT at
# IF = {glue:text}`f_blog` is {glue:text}`worst6_drop` points ({glue:text}`worst6_where`),
# against the blog's {glue:text}`blog_drop6_baseline_tail` and {glue:text}`blog_drop6_crt_tail`.
#
# ## Is the tail hit harder? A paired test
#
# Each seed's model is evaluated at float and at $b$ bits on the *same* test images, so the
# comparison is paired. The statistic is
#
# $$ \Delta = \text{drop}_\text{tail} - \text{drop}_\text{head}, \qquad
#    \text{drop}_g = \text{acc}_g(\text{float}) - \text{acc}_g(b\text{ bits}), $$
#
# averaged over seeds; $\Delta > 0$ means the tail pays more. Its 95% interval and one-sided
# p-value come from a paired bootstrap over test images ({glue:text}`n_boot` resamples, within
# each class, the same resample for every seed). The p-values of all imbalance factors, methods
# and bit-widths form one family, corrected with Benjamini-Hochberg; "tail pays more" is
# declared at an adjusted $q < 0.05$.

# %% tags=["hide-input"]
test_rows = []
for f in ifs:
    for m in METHODS:
        labels, ref = report.quant_predictions(default, s1, f, m, FLOAT)
        for b in qbits:
            _, new = report.quant_predictions(default, s1, f, m, b)
            res = stats.paired_drop_gap(
                labels, ref == labels, new == labels, head, tail, n_boot=n_boot, seed=0
            )
            test_rows.append({"imbalance_factor": f, "method": m, "bits": b, **res})
paired = pd.DataFrame(test_rows)
paired["q"] = stats.benjamini_hochberg(paired["pvalue"])
paired["verdict"] = np.where(paired["q"] < 0.05, "tail pays more", "no significant difference")
fig, axes = plt.subplots(1, len(ifs), figsize=(3.6 * len(ifs), 3.3), sharey=True, squeeze=False)
for ax, f in zip(axes[0], ifs, strict=True):
    sub = paired[paired["imbalance_factor"] == f]
    for k, m in enumerate(METHODS):
        s = sub[sub["method"] == m].set_index("bits").reindex(qbits)
        x = np.arange(len(qbits)) + (k - 2) * 0.12
        ax.errorbar(
            x,
            s["estimate"],
            yerr=[s["estimate"] - s["ci_low"], s["ci_high"] - s["estimate"]],
            fmt="o-",
            ms=3,
            lw=1,
            capsize=2,
            label=METHOD_LABELS[m],
        )
    ax.axhline(0, color="grey", lw=1)
    ax.set_xticks(range(len(qbits)), [f"{b}-bit" for b in qbits])
    ax.set_title(f"IF = {f:g}")
axes[0][0].set_ylabel("tail drop - head drop (points)")
axes[0][0].legend(fontsize="small", ncols=5, loc="upper left", bbox_to_anchor=(0, -0.15))
fig.suptitle("Does quantization cost the tail more than the head? (paired bootstrap 95% CI)", y=1.02)
plt.show()

# %% tags=["hide-input", "hide-output"]
shown = paired.assign(method=paired["method"].map(METHOD_LABELS))
shown = shown.set_index(["imbalance_factor", "method", "bits"])[
    ["drop_high", "drop_low", "estimate", "ci_low", "ci_high", "pvalue", "q", "verdict"]
].rename(
    columns={
        "drop_high": "head drop",
        "drop_low": "tail drop",
        "estimate": "Δ",
        "ci_low": "Δ low",
        "ci_high": "Δ high",
        "pvalue": "p (one-sided)",
        "q": "q (BH)",
    }
)
report.table(shown, precision=3)

# %% tags=["hide-input"]
sig = paired[paired["q"] < 0.05]
glue("n_tests", len(paired), display=False)
glue("n_sig", len(sig), display=False)
lowest = qbits[-1]
for m in ("baseline", "crt"):
    r = paired[
        (paired["imbalance_factor"] == f_lo) & (paired["method"] == m) & (paired["bits"] == lowest)
    ].iloc[0]
    glue(f"delta_low_{m}", f"{r['estimate']:.1f} [{r['ci_low']:.1f}, {r['ci_high']:.1f}]", display=False)
    glue(f"q_low_{m}", f"{r['q']:.3g}", display=False)
    r6 = paired[(paired["imbalance_factor"] == f_lo) & (paired["method"] == m) & (paired["bits"] == b6)].iloc[
        0
    ]
    glue(f"delta_b6_{m}", f"{r6['estimate']:.1f} [{r6['ci_low']:.1f}, {r6['ci_high']:.1f}]", display=False)
sig_bits = sorted({int(b) for b in sig["bits"]}, reverse=True)
glue("sig_bits", ", ".join(map(str, sig_bits)) if sig_bits else "none", display=False)
first_sig = max(sig_bits) if sig_bits else None
glue("first_sig_bits", f"{first_sig} bits" if first_sig else "no bit-width tested", display=False)
glue(
    "first_sig_max",
    f"{sig[sig['bits'] == str(first_sig)]['estimate'].max():.1f}" if first_sig else "n/a",
    display=False,
)
glue("lowest_bits", lowest, display=False)
delta_range = paired.groupby("bits")["estimate"].agg(["min", "max"])
glue(
    "delta_range_table",
    ", ".join(
        f"{b} bits {delta_range.loc[b, 'min']:+.1f} to {delta_range.loc[b, 'max']:+.1f}" for b in qbits
    ),
    display=False,
)

# %% [markdown]
# Of the {glue:text}`n_tests` comparisons, {glue:text}`n_sig` show the tail paying significantly
# more (bit-widths among them: {glue:text}`sig_bits`; the highest is {glue:text}`first_sig_bits`).
# Significance is not size: over imbalance factors and models Δ ranges
# {glue:text}`delta_range_table` points. These intervals measure test-set sampling for *these*
# trained models; the variation from one training seed to the next is in the seed-level
# intervals of the ablation figure below.
# At IF = {glue:text}`if_lo` and {glue:text}`b6` bits, Δ is {glue:text}`delta_b6_baseline`
# points for the baseline and {glue:text}`delta_b6_crt` for cRT; at {glue:text}`lowest_bits`
# bits, {glue:text}`delta_low_baseline` (q = {glue:text}`q_low_baseline`) and
# {glue:text}`delta_low_crt` (q = {glue:text}`q_low_crt`).
#
# ## Which classes lose, and how reliably
#
# Change of each class's accuracy from float, mean over seeds, at IF = {glue:text}`if_lo`
# (red: lost accuracy, blue: gained). Classes are ordered by training count (0 = most images).

# %% tags=["hide-input"]
pcq = report.quant_per_class(default)
pcq = pcq[pcq["imbalance_factor"] == f_lo]
ref_pc = pcq[pcq["bits"] == FLOAT].set_index(["seed", "method", "class"])["accuracy"]
pcq = pcq.join(ref_pc.rename("float"), on=["seed", "method", "class"])
pcq["change"] = pcq["accuracy"] - pcq["float"]
heat_methods = ("baseline", "crt")
fig, axes = plt.subplots(1, len(heat_methods), figsize=(11, 3.2), sharey=True)
lim = max(1.0, float(np.nanpercentile(np.abs(pcq["change"]), 99)))
for ax, m in zip(axes, heat_methods, strict=True):
    h = pcq[(pcq["method"] == m) & (pcq["bits"] != FLOAT)].groupby(["bits", "class"])["change"].mean()
    h = h.unstack("class").reindex(qbits)
    sns.heatmap(
        h,
        annot=True,
        fmt=".1f",
        cmap="RdBu",
        center=0,
        vmin=-lim,
        vmax=lim,
        ax=ax,
        cbar=ax is axes[-1],
        cbar_kws={"label": "change from float (points)"},
        annot_kws={"fontsize": 7},
    )
    ax.set_title(f"{METHOD_LABELS[m]}, IF = {f_lo:g}")
    ax.set_xlabel("class (0 = most training images)")
    ax.set_ylabel("weight bits" if ax is axes[0] else "")
plt.show()

# %% [markdown]
# How reliable are these per-class changes? For each seed, an exact McNemar test compares each
# class's 1,000 (smoke: fewer) test images at float and at $b$ bits; the p-values of the 10 classes ×
# bit-widths of one seed are Benjamini-Hochberg corrected. The table counts, per class, the seeds
# in which that class's accuracy dropped significantly (q < 0.05):

# %% tags=["hide-input"]
mc_rows = []
for m in heat_methods:
    labels, ref = report.quant_predictions(default, s1, f_lo, m, FLOAT)
    for b in qbits:
        _, new = report.quant_predictions(default, s1, f_lo, m, b)
        for s in range(ref.shape[0]):
            for c in range(len(CLASSES)):
                mask = labels == c
                t = stats.mcnemar_exact(ref[s][mask] == c, new[s][mask] == c)
                mc_rows.append({"method": m, "bits": b, "seed_index": s, "class": c, **t})
mc = pd.DataFrame(mc_rows)
mc["q"] = mc.groupby(["method", "seed_index"])["pvalue"].transform(stats.benjamini_hochberg)
mc["dropped"] = (mc["q"] < 0.05) & (mc["a_only"] > mc["b_only"])
counts = mc.groupby(["method", "bits", "class"])["dropped"].sum().unstack("class")
counts.index = counts.index.set_levels([counts.index.levels[0].map(METHOD_LABELS), counts.index.levels[1]])
counts = counts.reindex(pd.MultiIndex.from_product([[METHOD_LABELS[m] for m in heat_methods], qbits]))
report.table(counts.astype(str) + f"/{n_seeds}")

# %% [markdown]
# ## Which images flip?
#
# {cite:t}`hooker2019forget` and {cite:t}`hooker2020characterising` found that compression
# costs are concentrated on a small set of images, and that those are disproportionately from
# underrepresented classes. Here a test image *flips* when its predicted class at $b$ bits
# differs from its predicted class at float. Two readings of "the tail is hit harder" are then
# separable: the tail's accuracy may fall more in *absolute* points only because more of it
# was wrong (or fragile) to begin with, or its correctly classified images may be more likely
# to break. The table gives, per group at IF = {glue:text}`if_lo`: accuracy at float, the
# absolute drop (points) and relative drop (% of the float accuracy) at $b$ bits, the share of
# images that flip, the share of the images correct at float that become wrong (c→w) and of
# those wrong at float that become right (w→c), pooled over seeds.

# %% tags=["hide-input"]
flip_rows = []
for m in heat_methods:
    labels, ref = report.quant_predictions(default, s1, f_lo, m, FLOAT)
    for b in qbits:
        _, new = report.quant_predictions(default, s1, f_lo, m, b)
        for g, classes in (("head", head), ("tail", tail)):
            mask = np.isin(labels, classes)
            ok_f, ok_q = ref[:, mask] == labels[mask], new[:, mask] == labels[mask]
            acc_f, acc_q = 100 * ok_f.mean(), 100 * ok_q.mean()
            flip_rows.append(
                {
                    "method": METHOD_LABELS[m],
                    "bits": b,
                    "group": g,
                    "float": acc_f,
                    "abs. drop": acc_f - acc_q,
                    "rel. drop %": 100 * (acc_f - acc_q) / acc_f if acc_f else np.nan,
                    "flipped %": 100 * (ref[:, mask] != new[:, mask]).mean(),
                    "c→w %": 100 * (ok_f & ~ok_q).sum() / ok_f.sum() if ok_f.any() else np.nan,
                    "w→c %": 100 * (~ok_f & ok_q).sum() / max(1, (~ok_f).sum()),
                }
            )
flips = pd.DataFrame(flip_rows).set_index(["method", "bits", "group"])
report.table(flips)

# %% tags=["hide-input"]
fb = flips.xs(("baseline (CE)", lowest), level=("method", "bits"))
fc = flips.xs(("cRT", lowest), level=("method", "bits"))
for name, ff in (("baseline", fb), ("crt", fc)):
    for g in ("head", "tail"):
        glue(f"cw_{name}_{g}", f"{ff.loc[g, 'c→w %']:.1f}", display=False)
        glue(f"rel_{name}_{g}", f"{ff.loc[g, 'rel. drop %']:.1f}", display=False)
        glue(f"abs_{name}_{g}", f"{ff.loc[g, 'abs. drop']:.1f}", display=False)
        glue(f"flip_{name}_{g}", f"{ff.loc[g, 'flipped %']:.1f}", display=False)
fragile = fb.loc["tail", "c→w %"] > fb.loc["head", "c→w %"]
glue("fragile_word", "more" if fragile else "less", display=False)
glue(
    "fragile_reading",
    "the tail's larger loss is not only its lower starting point"
    if fragile
    else "the tail's larger absolute loss, where there is one, comes from where it started",
    display=False,
)

# %% [markdown]
# At {glue:text}`lowest_bits` bits, {glue:text}`flip_baseline_head`% of the baseline's head images
# and {glue:text}`flip_baseline_tail`% of its tail images flip. Of the images it classified
# correctly at float, {glue:text}`cw_baseline_head`% (head) and {glue:text}`cw_baseline_tail`%
# (tail) become wrong: the tail's correct predictions are {glue:text}`fragile_word` fragile than
# the head's. In absolute points the baseline's head loses {glue:text}`abs_baseline_head` and its
# tail {glue:text}`abs_baseline_tail`; relative to where each started,
# {glue:text}`rel_baseline_head`% and {glue:text}`rel_baseline_tail`%. For cRT the same
# fractions are {glue:text}`cw_crt_head`% and {glue:text}`cw_crt_tail`% (correct → wrong),
# {glue:text}`abs_crt_head` and {glue:text}`abs_crt_tail` points absolute.
#
# ### Compression-identified exemplars
#
# Following {cite:t}`hooker2019forget`, a test image is a *compression-identified exemplar*
# (CIE) when the most common prediction of the {glue:text}`n_seeds` float models differs from
# the most common prediction of their quantized versions. Counted by class for the baseline at
# IF = {glue:text}`if_lo`:

# %% tags=["hide-input"]
from scipy import stats as sps  # noqa: E402

cie_rows, cie_examples = [], {}
for b in qbits:
    labels, ref = report.quant_predictions(default, s1, f_lo, "baseline", FLOAT)
    _, new = report.quant_predictions(default, s1, f_lo, "baseline", b)
    mode_f, mode_q = sps.mode(ref, axis=0).mode, sps.mode(new, axis=0).mode
    cie = mode_f != mode_q
    cie_examples[b] = (np.flatnonzero(cie), mode_f, mode_q, labels)
    for c in range(len(CLASSES)):
        cie_rows.append({"bits": b, "class": c, "CIEs": int(cie[labels == c].sum())})
cie_tab = pd.DataFrame(cie_rows).pivot_table(index="bits", columns="class", values="CIEs").reindex(qbits)
cie_tab["head"] = cie_tab[head].sum(axis=1)
cie_tab["tail"] = cie_tab[tail].sum(axis=1)
report.table(cie_tab)

# %% tags=["hide-input"]
b_show = "4" if "4" in qbits else lowest  # where the models are compressed hard but still work
idx, mode_f, mode_q, labels = cie_examples[b_show]
glue("cie_bits", b_show, display=False)
glue("cie_n", len(idx), display=False)
glue("cie_tail_share", f"{100 * np.isin(labels[idx], tail).mean():.0f}" if len(idx) else "n/a", display=False)
try:
    test_x = load_cifar10().test_x
except DataNotFoundError as exc:  # reading the book without the images: say so, do not fail
    test_x = None
    print(f"CIFAR-10 not found, exemplar images not shown ({exc})")
if test_x is not None and len(idx):
    # the test split is the full balanced test set, in the stored order (ltmpq.data.make_splits)
    pick = np.random.default_rng(0).choice(idx, min(8, len(idx)), replace=False)
    fig, axes = plt.subplots(1, len(pick), figsize=(1.45 * len(pick), 2.2))
    for ax, i in zip(np.atleast_1d(axes), pick, strict=True):
        ax.imshow(test_x[i])
        ax.set_axis_off()
        ax.set_title(
            f"true {CLASSES[labels[i]]}\nfloat {CLASSES[mode_f[i]]}\n{b_show}-bit {CLASSES[mode_q[i]]}",
            fontsize=7,
        )
    fig.suptitle(f"Compression-identified exemplars, baseline, IF = {f_lo:g}, {b_show} bits", y=1.08)
    plt.show()

# %% [markdown]
# At {glue:text}`cie_bits` bits there are {glue:text}`cie_n` CIEs, {glue:text}`cie_tail_share`%
# of them from tail classes (which are 60% of the test set).
#
# ## Ablations: the quantizer choices the blog left open
#
# Each variant changes one thing of the default quantizer above, and the same models are
# quantized again. The figure shows, for every variant, imbalance factor and bit-width, Δ =
# tail drop − head drop (points, mean over seeds; positive: the tail pays more) for the
# baseline and cRT. A `*` marks a cell whose 95% interval over seeds excludes zero (the tail,
# or for negative Δ the head, pays significantly more); a `★` marks a cell whose conclusion
# (tail / head / neither) differs from the default quantizer's.

# %% tags=["hide-input"]
per_seed = drops[drops["metric"].isin(["head", "tail"]) & (drops["bits"] != FLOAT)]
per_seed = per_seed.pivot_table(
    index=["variant", "imbalance_factor", "seed", "method", "bits"], columns="metric", values="drop"
).reset_index()
per_seed["delta"] = per_seed["tail"] - per_seed["head"]
abl = []
for key, g in per_seed.groupby(["variant", "imbalance_factor", "method", "bits"], sort=False):
    mean, half, n = stats.mean_ci(g["delta"].to_numpy())
    word = verdicts.side(mean, half, positive="tail", negative="head")
    abl.append(
        dict(
            zip(["variant", "imbalance_factor", "method", "bits"], key, strict=True),
            delta=mean,
            ci=half,
            conclusion=word,
        )
    )
abl = pd.DataFrame(abl)
ref_word = abl[abl["variant"] == "default"].set_index(["imbalance_factor", "method", "bits"])["conclusion"]
abl["changed"] = [
    ref_word.get((f, m, b)) != w
    for f, m, b, w in abl[["imbalance_factor", "method", "bits", "conclusion"]].itertuples(index=False)
]
abl["cell"] = [
    f"{report.pm(d, c)} {w}{' ★' if ch else ''}"
    for d, c, w, ch in abl[["delta", "ci", "conclusion", "changed"]].itertuples(index=False)
]
abl["variant"] = pd.Categorical(abl["variant"], categories=list(qres), ordered=True)
abl["column"] = [f"IF {f:g}\n{b}-bit" for f, b in abl[["imbalance_factor", "bits"]].itertuples(index=False)]
columns = [f"IF {f:g}\n{b}-bit" for f in ifs for b in qbits]
fig, axes = plt.subplots(2, 1, figsize=(9, 2 * (0.32 * len(qres) + 1.2)), sharex=True)
for ax, m in zip(axes, heat_methods, strict=True):
    sub = abl[abl["method"] == m]
    values = sub.pivot_table(index="variant", columns="column", values="delta", observed=True)[columns]
    marks = sub.assign(
        text=[
            f"{d:+.1f}{'' if w == '–' else '*'}{'★' if ch else ''}"
            for d, w, ch in sub[["delta", "conclusion", "changed"]].itertuples(index=False)
        ]
    ).pivot_table(index="variant", columns="column", values="text", aggfunc="first", observed=True)[columns]
    lim = max(1.0, float(np.nanmax(np.abs(abl["delta"]))))
    sns.heatmap(
        values,
        annot=marks,
        fmt="",
        cmap="PuOr_r",
        center=0,
        vmin=-lim,
        vmax=lim,
        ax=ax,
        cbar_kws={"label": "Δ (points)"},
        annot_kws={"fontsize": 7},
    )
    for x in range(len(qbits), len(columns), len(qbits)):
        ax.axvline(x, color="white", lw=2)
    ax.set_title(METHOD_LABELS[m])
    ax.set_xlabel("")
    ax.set_ylabel("")
    ax.tick_params(axis="x", labelsize=7, rotation=0)
fig.tight_layout()
fig.suptitle(
    "Quantizer ablations: who pays for the lost bits? (* interval excludes 0, ★ differs from default)", y=1.02
)
plt.show()

# %% [markdown]
# The same numbers with their 95% intervals over seeds:

# %% tags=["hide-input", "hide-output"]
full = abl.assign(method=abl["method"].map(METHOD_LABELS)).pivot_table(
    index=["method", "variant"],
    columns=["imbalance_factor", "bits"],
    values="cell",
    aggfunc="first",
    observed=True,
)
full = full.reindex(columns=sorted(full.columns, key=lambda c: (-c[0], -int(c[1]))))
report.table(full)

# %% [markdown]
# And what each variant does to accuracy itself, at IF = {glue:text}`if_lo` (mean over seeds;
# the table below the figure has every number):

# %% tags=["hide-input"]
acc = frame[
    (frame["imbalance_factor"] == f_lo)
    & frame["method"].isin(heat_methods)
    & frame["metric"].isin(["overall", "head", "tail"])
]
palette = dict(zip(qres, ["black", *sns.color_palette("tab10", len(qres) - 1)], strict=True))
fig, axes = plt.subplots(2, 2, figsize=(9, 6), sharex=True, sharey="row")
for i, metric in enumerate(("overall", "tail")):
    for j, m in enumerate(heat_methods):
        d = acc[(acc["metric"] == metric) & (acc["method"] == m)]
        d = d.assign(position=d["bits"].map({b: k for k, b in enumerate(bits)}))
        sns.lineplot(
            d,
            x="position",
            y="value",
            hue="variant",
            hue_order=list(qres),
            errorbar=None,
            marker="o",
            markersize=4,
            lw=1.2,
            ax=axes[i][j],
            palette=palette,
        )
        # drawn again on top: several variants coincide with the default
        top = d[d["variant"] == "default"].groupby("position")["value"].mean()
        axes[i][j].plot(top.index, top.to_numpy(), color="black", lw=2, ls="--", zorder=10)
        axes[i][j].set_title(f"{METHOD_LABELS[m]}, IF = {f_lo:g}" if i == 0 else "")
        axes[i][j].set_ylabel(f"{metric} acc. (%)")
        axes[i][j].set_xlabel("weight bits")
        if (i, j) != (1, 1):
            axes[i][j].get_legend().remove()
for ax in axes[1]:
    ax.set_xticks(range(len(bits)), bits)
axes[1][1].legend(fontsize="small", ncols=3, loc="upper right", bbox_to_anchor=(1.0, -0.2))
plt.show()

# %% tags=["hide-input", "hide-output"]
acc_t = acc.groupby(["variant", "method", "metric", "bits"], sort=False)["value"].mean().unstack("bits")[bits]
acc_t = acc_t.rename(index=METHOD_LABELS, level="method")
report.table(acc_t)

# %% tags=["hide-input"]
# Which choice matters most: the mean absolute change in tail accuracy against the default
# quantizer, over imbalance factors, methods and quantized bit-widths (seed means).
tail_means = (
    frame[(frame["metric"] == "tail") & (frame["bits"] != FLOAT)]
    .groupby(["variant", "imbalance_factor", "method", "bits"])["value"]
    .mean()
)
ref_tail = tail_means.xs("default", level="variant")
effect = {
    v: float((tail_means.xs(v, level="variant") - ref_tail).abs().mean()) for v in qres if v != "default"
}
changed = abl[abl["variant"] != "default"].groupby("variant")["changed"].sum()
if effect:
    top = max(effect, key=effect.get)
    glue("top_variant", top, display=False)
    glue("top_effect", f"{effect[top]:.1f}", display=False)
    glue("n_changed_variants", int((changed > 0).sum()), display=False)
    glue(
        "changed_variants",
        ", ".join(f"{v} ({n} cells)" for v, n in changed.items() if n) or "none",
        display=False,
    )
    same = [v for v in ("BN not folded",) if v in effect]
    glue("bn_same", f"{effect[same[0]]:.2f}" if same else "n/a", display=False)
else:
    for k in ("top_variant", "top_effect", "n_changed_variants", "changed_variants", "bn_same"):
        glue(k, "n/a (no ablations run)", display=False)

# %% [markdown]
# The choice that moves tail accuracy most is **{glue:text}`top_variant`** (mean absolute
# change of {glue:text}`top_effect` points against the default). Variants that reach a different
# head/tail conclusion somewhere: {glue:text}`changed_variants`.
#
# One variant is predictable from algebra. With one min-max scale per output channel, folding
# BatchNorm multiplies each channel's weights by one constant and its scale with them, so the
# folded and the unfolded model round to the same grid up to float error. Measured: the mean
# absolute change in tail accuracy between them is {glue:text}`bn_same` points. (Under MSE
# clipping this holds only for positive BatchNorm scales: a negative one flips the channel, and
# the grid $[-2^{b-1}, 2^{b-1}-1]$ is not symmetric.) Folding matters when one scale serves the
# whole layer, because it then mixes channels of
# very different magnitudes into one grid. The activation rows use unsigned 8-bit grids after
# every ReLU, their clipping chosen by squared error on {glue:text}`calib_size` training images
# (never test images) of the stated composition.

# %% tags=["hide-input"]
glue("calib_size", qcfg.calibration_size, display=False)
cal = []
for v in qres:
    for c, r in qres[v].items():
        if r.get("calibration_counts"):
            cal.append(
                {
                    "calibration": qres[v][c]["quant"]["calibration"],
                    "imbalance_factor": c.imbalance_factor,
                    "seed": c.seed,
                    **{str(k): n for k, n in enumerate(r["calibration_counts"])},
                }
            )
if cal:
    cal = pd.DataFrame(cal)
    first = (
        cal[cal["seed"] == cal["seed"].min()]
        .drop(columns="seed")
        .set_index(["calibration", "imbalance_factor"])
    )
    display(report.table(first).set_caption("calibration images per class (first seed)"))

# %% [markdown]
# ## Cost of this chapter

# %% tags=["hide-input"]
wall = pd.DataFrame(
    [
        {
            "variant": v,
            "seconds": r["provenance"]["wall_seconds"],
            "device": r["provenance"]["device"]["name"],
            "threads": r["provenance"]["device"]["torch_threads"],
        }
        for v, by in qres.items()
        for r in by.values()
    ]
)
glue("wall_min", f"{wall['seconds'].sum() / 60:.0f}", display=False)
glue("wall_default_min", f"{wall[wall['variant'] == 'default']['seconds'].sum() / 60:.1f}", display=False)
glue("n_sweeps", len(wall), display=False)
glue("threads", ", ".join(map(str, sorted(wall["threads"].unique()))), display=False)
report.table(
    wall.groupby("variant", sort=False)["seconds"]
    .agg(["count", "sum", "mean"])
    .rename(columns={"count": "runs", "sum": "total (s)", "mean": "per run (s)"})
)

# %% [markdown]
# The {glue:text}`n_sweeps` sweeps behind this chapter took {glue:text}`wall_min` minutes of
# compute from cached stage-1 models ({glue:text}`wall_default_min` for the default quantizer
# alone; torch threads per process: {glue:text}`threads`), evaluating the validation split and
# the test set at each bit-width. Reproduce them with
# `make runs PROFILE=cpu RUN_ARGS='--stage quantized'` (which trains first whatever chapter 1's
# models are missing).
#
# ## What this chapter showed
#
# With a per-channel, min-max, BatchNorm-folded quantizer, no model of chapters 1 and 2 loses
# more than {glue:text}`max_drop_b6` points of overall accuracy (mean over seeds) at
# {glue:text}`b6` bits. The tail pays significantly more than the head in {glue:text}`n_sig` of
# {glue:text}`n_tests` paired comparisons; at {glue:text}`first_sig_bits`, the highest
# bit-width where this happens, Δ is at most {glue:text}`first_sig_max` points. Over imbalance
# factors and models Δ ranges {glue:text}`delta_range_table` points. At
# {glue:text}`lowest_bits` bits the baseline's correct tail predictions are
# {glue:text}`fragile_word` fragile than its correct head predictions:
# {glue:text}`fragile_reading`. Of the quantizer choices the blog left unstated,
# {glue:text}`top_variant` moves tail accuracy most. Chapter 4 asks whether spending the bits
# unevenly across layers, by a tail-aware sensitivity, wins the tail back.
