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
# # Why did the blog see a 6-bit tail drop?
#
# **The question.** Going from 32 to 6 bits cost the blog's baseline {glue:text}`blog_base_head`
# points of accuracy on the head classes and {glue:text}`blog_base_tail` on the tail (its Figs.
# 7/8): Δ, the tail's drop minus the head's, is {glue:text}`blog_delta6` points, its claim 3
# ("lower bit-widths hurt tail classes much more than head classes") at its own bit-width.
# Post-training quantization to 8 bits (weights per channel, activations per layer) is known to
# keep a CNN's classification accuracy close to floating point
# {cite:p}`krishnamoorthi2018quantizing`. So: **what would a quantizer have to do to produce
# the blog's 6-bit numbers on our models?**
#
# **The answer here.** At IF {glue:text}`f_blog`, over {glue:text}`n_seeds` trained models
# (mean and two-sided 95% interval over seeds), the baseline's Δ at 6 bits is
# {glue:text}`default_delta6` under chapter 3's quantizer ({glue:text}`default_reading6`). Of
# {glue:text}`n_hypotheses` other quantizers, the one with the largest Δ,
# “{glue:text}`max_delta6_variant`”, gives {glue:text}`max_delta6` ({glue:text}`max_reading6`),
# against the blog's {glue:text}`blog_delta6`. {glue:text}`pattern_text` Claim 3 under the
# default quantizer: **{glue:text}`claim3_default`**. The simulated quantization the chapters
# use agrees with a real integer runtime on at least {glue:text}`int_agree_min`% of test images.
# At {glue:text}`mech_bits_lo` bits, the per-class curvature of the loss (its Hessian trace)
# {glue:text}`mech_reading_lo`. {glue:text}`ladder_answer`
#
# The chapter runs named quantizer hypotheses on the same models, checks that the simulated
# quantization means what a real integer kernel computes, tests a mechanism proposed for why
# rare classes lose more (their larger curvature), and asks whether larger networks behave
# differently.
#
# *Rerun this chapter* with your own parameters, e.g. `make chapter CHAPTER=05_six_bits
# PARAMS="-p seeds '[0, 1]'"`; the cell below lists them.

# %% tags=["parameters", "hide-cell"]
profile = "cpu"  # which stored results to show: smoke | cpu
compute = False  # True: produce missing runs (the book build never does)
imbalance_factor = 0.01  # the blog's Figs. 7/8 setting
seeds = None  # None: the profile's seeds, e.g. [0, 1, 2]
n_boot = 2000  # bootstrap resamples (seeds x classes) of the mechanism's correlations

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from IPython.display import display
from matplotlib.colors import BoundaryNorm, ListedColormap

from ltmpq import ChapterParams, frames, load, plotting, tables
from ltmpq.analysis import ch5_six_bits as ch5
from ltmpq.analysis.ch3_quantization import blog_drop
from ltmpq.config import QUANT_HYPOTHESES, QUANT_HYPOTHESIS_DESCRIPTIONS
from ltmpq.uncertainty import mean_ci
from ltmpq.vocab import CLASSES, METHOD_LABELS

params = ChapterParams(profile, compute, (imbalance_factor,), seeds)
plotting.setup()
names = ["default", *QUANT_HYPOTHESES]
labels = [ch5.hypothesis_label(n) for n in names]
qres = load.quantized_results(params, names)
raw_drops = frames.drop_frame(frames.quant_frame(qres))
drops = ch5.label_variants(raw_drops)  # the chapter's names for the quantizers from here on
table = ch5.hypothesis_drops(drops, imbalance_factor)
# every imbalance factor the hypotheses ran at: the chapter's tidy table and its CSV
at_ifs = ChapterParams(profile, compute, params.prof.hypothesis_ifs, seeds)
qres_ifs = load.quantized_results(at_ifs, names)
raw_drops_ifs = frames.drop_frame(frames.quant_frame(qres_ifs))
seed_table = ch5.hypothesis_seed_table(raw_drops_ifs)
tables.download(seed_table.set_index("quantizer").round(6), "05_six_bits_hypotheses")
tables.glue_all(
    {
        "data_note": load.data_note(qres["default"]),
        "n_seeds": len(qres["default"]),
        "f_blog": f"{imbalance_factor:g}",
        "blog_base_head": f"{blog_drop('baseline', 'head'):.1f}",
        "blog_base_tail": f"{blog_drop('baseline', 'tail'):.1f}",
        **ch5.hypothesis_facts(table),
        **ch5.answer_facts(ch5.delta_summary(seed_table), imbalance_factor),
    }
)

# %% [markdown]
# ## Quantizer hypotheses
#
# Each hypothesis is a stated configuration of `ltmpq`'s quantizer, applied to chapter 3's
# default (signed symmetric weights per output channel, min-max ranges, BatchNorm folded, float
# activations) and swept over the same bit-widths on the same {glue:text}`n_seeds` models per
# model kind, at IF = {glue:text}`f_blog`, on {glue:text}`data_note`. Most of them also quantize
# the activations, at the weights' bit-width (8-bit activations with 8-bit weights, down to 4
# and 4), per tensor, with ranges calibrated on long-tailed training images (drawn as the
# training set is, the rare classes rare), as a deployment would. "Asymmetric" means a grid with
# a zero point; quantized logits get an asymmetric per-tensor grid before the argmax. Each piece
# is tested against an independent reference on random tensors (`tests/test_quantization.py`).
#
# The first table gives each quantizer's name in the chapter, its name in
# `ltmpq.config.QUANT_HYPOTHESES` (what `--variants` takes; there "W=A" stands for activations
# at the weights' bit-width, "affine" for asymmetric, "LT calib." for calibration on long-tailed
# (LT) training images, "BN" for BatchNorm and "naive" for all the simple choices at once) and what it
# does. The second gives head / tail accuracy lost from float (points, mean ± 95% CI over
# seeds). The distance is the mean absolute difference from the blog's eight cells (both models,
# head and tail, 8 and 6 bits). The blog's 6-bit pattern: the baseline's tail loses at least
# {glue:text}`tail_hit` points while its head loses at most {glue:text}`head_spared`; the last
# column judges it on the intervals over seeds. Every number per seed, at every imbalance factor
# the quantizers ran at: {download}`the hypotheses' drops and Δ (CSV) <data/05_six_bits_hypotheses.csv>`.

# %% tags=["hide-input"]
# the descriptions apart, so that the numbers fit the page
descriptions = {ch5.hypothesis_label(n): d for n, d in QUANT_HYPOTHESIS_DESCRIPTIONS.items()}
hyp_table = ch5.hypothesis_table(table, descriptions)
config_name = {ch5.hypothesis_label(n): n for n in names} | {"blog": "–"}
what = hyp_table[["what"]].assign(**{"name in ltmpq.config": hyp_table.index.map(config_name)})
display(tables.table(what[["name in ltmpq.config", "what"]], scroll=True))
numbers = hyp_table.drop(columns="what").rename(columns=lambda c: ", ".join(c) if isinstance(c, tuple) else c)
display(tables.table(numbers, scroll=True, precision=1))

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(7.5, 5))
six = table[(table["method"] == "baseline") & (table["bits"] == "6")]
palette = sns.color_palette("tab10", 10)
markers = ["o", "s", "^", "v", "D", "P", "X", "<", ">", "*"]
lo_x = min(-1.0, float((six["head_drop"] - six["head_ci"]).min()) - 0.5)
hi_x = max(float((six["head_drop"] + six["head_ci"]).max()), 2 * ch5.HEAD_SPARED) + 0.5
lo_y = min(-1.0, float((six["tail_drop"] - six["tail_ci"]).min()) - 0.5)
hi_y = max(float((six["tail_drop"] + six["tail_ci"]).max()), blog_drop("baseline", "tail"), ch5.TAIL_HIT) + 1
# the blog's pattern: the head loses at most HEAD_SPARED points and the tail at least TAIL_HIT
ax.fill_between([lo_x, ch5.HEAD_SPARED], ch5.TAIL_HIT, hi_y, color="0.9", zorder=0, lw=0)
ax.plot(
    [lo_x, ch5.HEAD_SPARED, ch5.HEAD_SPARED], [ch5.TAIL_HIT, ch5.TAIL_HIT, hi_y], color="0.6", ls=":", lw=1
)
hyps = [v for v in six["variant"] if v != "default"]
for r in six.itertuples(index=False):
    i = hyps.index(r.variant) if r.variant in hyps else None
    ax.errorbar(
        r.head_drop, r.tail_drop, xerr=r.head_ci, yerr=r.tail_ci, ms=5, capsize=2, label=r.variant,
        fmt="o" if i is None else markers[i % len(markers)], color="black" if i is None else palette[i % 10],
    )  # fmt: skip
ax.scatter(
    blog_drop("baseline", "head"), blog_drop("baseline", "tail"), **{**plotting.BLOG_STYLE, "label": "blog"}
)
ax.set(
    xlim=(lo_x, hi_x),
    ylim=(lo_y, hi_y),
    xlabel="head accuracy lost at 6 bits (points)",
    ylabel="tail accuracy lost at 6 bits (points)",
    title=f"Baseline, float → 6 bits, IF = {imbalance_factor:g}, each quantizer\n"
    f"(shaded: the blog's pattern, head ≤ {ch5.HEAD_SPARED:g} and tail ≥ {ch5.TAIL_HIT:g} points lost)",
)
ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
plt.show()

# %% tags=["hide-input"]
# quantizing the logits alone: each quantizer with quantized logits against its twin with float
# logits (the same network, activations and calibration images)
pairs = ch5.logit_pairs(params.prof.quant_configs(names))
with_logits = next((n for n in pairs if pairs[n] != "default"), next(iter(pairs)))  # the weights' bits
tie = ch5.logit_tie_effect(drops, ch5.hypothesis_label(with_logits), ch5.hypothesis_label(pairs[with_logits]),
                           imbalance_factor)  # fmt: skip
tables.glue_all(
    {
        "tie_with": ch5.hypothesis_label(with_logits),
        "tie_without": ch5.hypothesis_label(pairs[with_logits]),
        "tie_text": ch5.logit_tie_text(tie),
    }
)

# %% [markdown]
# {glue:text}`pattern_text` The closest to the blog's cells is “{glue:text}`closest`” (mean
# distance {glue:text}`closest_distance` points, against {glue:text}`default_distance` for the
# default quantizer). {glue:text}`worst_text`
#
# Quantized logits hurt the tail in particular, and the reason is the argmax. A per-tensor grid
# never reverses the order of two logits; it can only merge close ones into a tie, and torch's
# argmax, like numpy's, returns the first of tied maxima: the lowest class index, which in
# CIFAR-10-LT is the class with the most training images. So every prediction that quantizing
# the logits changes is a tie resolved toward the head. “{glue:text}`tie_with`” against
# “{glue:text}`tie_without`” (the same quantizer with float logits: the same network,
# activations and calibration images) measures that effect alone. Paired per seed, quantizing
# the logits adds to the baseline's accuracy loss (points, mean ± 95% CI over seeds):
# {glue:text}`tie_text`.
#
# ### At other imbalance factors
#
# The same quantizers on the models of every imbalance factor they ran at: Δ = tail drop − head
# drop of the baseline (points, mean ± 95% CI over seeds; positive: the tail pays more).

# %% tags=["hide-input"]
tables.table(ch5.delta_by_imbalance(ch5.label_variants(raw_drops_ifs)).loc[labels], scroll=True)

# %% [markdown]
# ### Claim 3 under each quantizer
#
# Claim 3 ("lower bit-widths hurt the tail much more than the head") judged by chapter 4's rule
# under each quantizer: at each bit-width, the tail must lose more than one point more than the
# head, with the whole 95% interval over seeds, for the baseline and for cRT.

# %% tags=["hide-input"]
c3 = ch5.claim3_by_variant(drops, params.prof.quant_bits, labels)
tables.glue_all(ch5.claim3_conditions(c3))
view = c3.assign(cell=c3["verdict"] + " (" + c3["estimate [95% CI]"] + ")")
tables.table(view.pivot(index="variant", columns="part", values="cell").loc[labels].rename_axis("quantizer"),
             scroll=True)  # fmt: skip

# %% [markdown]
# Parts as in chapter 4's verdict table (3a/3b: 6 bits, 3c/3d: 4 bits, 3e/3f: the fewest bits;
# baseline, then cRT). Claim 3 holds for both models under {glue:text}`claim3_conditions`. Under
# the default quantizer, chapter 4's verdict: **{glue:text}`claim3_default`**.
#
# ## Real integer inference
#
# Our quantization is simulated: float arithmetic on rounded weights and activations. Does a
# real integer kernel compute the same thing? The default quantizer with 8-bit activations
# (8-bit weights and activations, calibrated as above) is rebuilt from the *same* scales with
# torch.ao's quantized modules and run by PyTorch's x86 integer kernels (`ltmpq.integer`),
# beside the simulation, on all test images. The integer model also quantizes the input image
# (the simulation keeps it in float); "rounded input" feeds the simulation that same rounded
# image, so what is left is the kernels' own doing.

# %% tags=["hide-input"]
eres = load.explain_results(ChapterParams(profile, compute, None, seeds))
ints = ch5.integer_frame(eres)
tables.glue_all(ch5.integer_facts(ints))
shown = ints.assign(head=ints["head"].map(METHOD_LABELS))
tables.table(shown.set_index(["imbalance_factor", "seed", "head"]), precision=2)

# %% [markdown]
# Over {glue:text}`int_runs` models and both classifiers, the integer runtime's predictions
# agree with the simulation's on {glue:text}`int_agree_min`% to {glue:text}`int_agree_max`% of
# test images (mean {glue:text}`int_agree_mean`%); with the simulation fed the same rounded
# input, on at least {glue:text}`int_rounded_min`%. {glue:text}`int_conclusion` Accuracies
# differ by at most {glue:text}`int_acc_diff` points overall and {glue:text}`int_class_diff`
# on any class.
# (fbgemm's int16 accumulation saturates 8-bit activations on CPUs without VNNI instructions,
# which is why torch's default x86 observers reduce activations to 7 bits; `ltmpq.integer` warns
# there, and the tests cover both.)
#
# ## The mechanism: do the rare classes have more curvature?
#
# {cite:t}`liu2025unfairness` argue that groups with less training data have larger gradient
# norms and Hessian traces and therefore lose more under quantization. Per class, on the
# book's models: the Hessian trace of the class's mean cross-entropy in the 16 quantized
# layers' weights (Hutchinson's estimator, chapter 4's machinery), its squared gradient norm, and
# the HAWQ term $\sum_n \operatorname{Tr}(H_n)/N_n \lVert Q_b(W_n) - W_n \rVert^2$, the
# second-order estimate of the class's loss increase at $b$ bits; on balanced validation images
# (both models) and on the class's own training images (baseline). Each is rank-correlated over
# the ten classes with the class's test-accuracy drop under the default quantizer, per seed, and
# averaged over seeds (95% intervals: bootstrap over seeds and classes, {glue:text}`n_boot_mech`
# resamples). Does curvature predict which classes lose better than training-set size alone?

# %% tags=["hide-input"]
bits = params.prof.explain.bits
curv = ch5.curvature_frame(
    eres, load.quantized_results(ChapterParams(profile, compute, None, seeds), ["default"])["default"], bits
)
mech = ch5.mechanism_table(curv, bits, n_boot)
tables.glue_all({"n_boot_mech": n_boot, **ch5.mechanism_facts(mech)})
tables.table(ch5.mechanism_view(mech), scroll=True)

# %% tags=["hide-input"]
# one colour per class, from the most training images (class 0) to the fewest: no labels to collide
n_cls = int(curv["class"].max()) + 1
cmap = ListedColormap(sns.color_palette("viridis", n_cls))
norm = BoundaryNorm(np.arange(-0.5, n_cls), n_cls)
fig, axes = plt.subplots(1, 2, figsize=(11.5, 3.9), sharey=True)
b = min(bits)
for ax, (images, head) in zip(axes, [("val", "baseline"), ("val", "crt")], strict=True):
    d = curv[(curv["images_from"] == images) & (curv["head"] == head)]
    g = d.groupby("class")[["trace", f"drop_{b}"]].agg(["mean", lambda v: mean_ci(v.to_numpy())[1]])
    for c, r in g.iterrows():
        ax.errorbar(
            r[("trace", "mean")], r[(f"drop_{b}", "mean")],
            xerr=r[("trace", "<lambda_0>")], yerr=r[(f"drop_{b}", "<lambda_0>")],
            fmt="o", ms=6, capsize=2, color=cmap(norm(c)), ecolor=cmap(norm(c)), alpha=0.9,
        )  # fmt: skip
    ax.set(xscale="log", title=f"{METHOD_LABELS[head]}, {b} bits")
    ax.axhline(0, color="black", lw=0.6)
axes[0].set_ylabel(f"test accuracy lost at {b} bits (points)")
fig.supxlabel("Hessian trace of the class's loss on balanced validation images (log scale)", y=-0.02)
bar = fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes, ticks=range(n_cls), pad=0.01)
bar.ax.set_yticklabels(
    [f"{c} {CLASSES[c]}" if c < len(CLASSES) else str(c) for c in range(n_cls)], fontsize=8
)
bar.set_label("class (0: most training images)")
bar.ax.minorticks_off()
plt.show()

# %% [markdown]
# Each point is a class (mean ± 95% CI over seeds). For the baseline on validation images, at
# {glue:text}`mech_bits_lo` bits the Hessian trace's rank correlation with the per-class drop is
# {glue:text}`mech_trace_lo` and the gradient norm's {glue:text}`mech_grad_lo`, against
# {glue:text}`mech_count_lo` for −log of the training count. Given the count, the trace's
# partial correlation is {glue:text}`mech_partial_lo`; |ρ(trace)| − |ρ(count)| =
# {glue:text}`mech_diff_lo` (positive: curvature ranks the classes' losses better than their
# training-set size). At {glue:text}`mech_bits_hi` bits: {glue:text}`mech_trace_hi`,
# {glue:text}`mech_count_hi`, partial {glue:text}`mech_partial_hi`, difference
# {glue:text}`mech_diff_hi`. With ten classes whose training counts fall monotonically, count and
# curvature are hard to separate; the intervals say how far these seeds can.
#
# ## Scale
#
# Does the head/tail asymmetry grow with the network, or with the classic VGG16 classifier (two
# 4096-wide fully connected layers with dropout 0.5, which the blog's "16 weight layers" may
# mean, and whose per-tensor scales cover a 4096 × 4096 matrix)? The scale ladder is a series
# of larger models, each a step up in width or in the classifier's size, trained at IF =
# {glue:text}`ladder_if` with the book's recipe, seeds {glue:text}`ladder_seeds`, and
# quantized with the default quantizer and with “{glue:text}`ladder_hypothesis`”
# ({glue:text}`ladder_check`). Its first step is the book's own models.

# %% tags=["hide-input"]
ladder_q, ladder_s1, ladder_missing = load.ladder_results(
    ChapterParams(profile, compute, params.prof.ladder_ifs, seeds), allow_missing=True
)
base = params.prof.ladder_base
rung_cfgs = params.prof.ladder_rungs(next(iter(ladder_s1[base])))
ladder = ch5.label_variants(ch5.ladder_deltas(ch5.ladder_drops(ladder_q)))
ladder_labels = [ch5.hypothesis_label(v) for v in params.prof.ladder_variants]
trend = ch5.ladder_trend(ladder, base)
command = f"make runs PROFILE={profile} RUN_ARGS='--stage ladder --jobs 2'"
precision = next((rung_cfgs[r].precision for r in ladder_missing), None)  # what the missing ones need
missing_text = ch5.ladder_missing_text(ladder_missing, precision, command)
tables.glue_all(
    {
        "ladder_if": ", ".join(f"{f:g}" for f in params.prof.ladder_ifs),
        "ladder_seeds": ", ".join(map(str, params.prof.ladder_seeds)),
        "ladder_hypothesis": ", ".join(v for v in ladder_labels if v != "default") or "no hypothesis",
        "ladder_check": ch5.ladder_variant_check(
            ch5.hypothesis_facts(table)["closest"], params.prof.ladder_variants
        ),
        "ladder_summary": ch5.ladder_summary(trend, missing_text, base, ladder_labels),
        "ladder_answer": ch5.ladder_answer(trend),
    }
)
tables.table(ch5.ladder_models(ladder_s1, rung_cfgs, ladder_missing), scroll=True, precision=1)

# %% [markdown]
# Per model: its shape, forward multiply-accumulates per image (the cost of a training step up
# to a constant) and their ratio to the book's model's, the book's model's recorded training
# time scaled by that ratio (what a model should cost on the machine the book's models trained
# on), and, for a trained model, its float test accuracy and recorded training time.
#
# Head / tail drop from float and Δ = tail − head (points, mean ± 95% CI over seeds) at 6 and 4
# bits, per quantizer, model kind and model size:

# %% tags=["hide-input"]
tables.table(ch5.ladder_table(ladder), scroll=True)

# %% tags=["hide-input"]
if not trend.empty:
    g = sns.catplot(
        data=ladder.assign(model=ladder["method"].map(METHOD_LABELS)),
        x="rung", y="delta", hue="variant", col="bits", row="model", kind="point",
        errorbar=plotting.t_interval, dodge=0.3, height=2.8, aspect=1.4, col_order=["6", "4"],
    )  # fmt: skip
    g.set_axis_labels("", "Δ = tail − head drop (points)")
    g.set_titles("{row_name}, {col_name} bits")
    g.legend.set_title("quantizer")
    for ax in g.axes.flat:
        ax.axhline(0, color="black", lw=0.6)
    plt.show()

# %% [markdown]
# {glue:text}`ladder_summary`
#
# ## What it cost

# %% tags=["hide-input"]
wider = [rung for rung in ladder_s1 if rung != base]
groups = {
    "hypotheses": {(n, c): r for n in QUANT_HYPOTHESES for c, r in qres_ifs[n].items()},
    "explain": eres,
}
groups |= {rung: ladder_s1[rung] for rung in wider}
groups |= {f"{rung} {v}": by for rung in wider for v, by in ladder_q[rung].items()}
spent = frames.cost_frame(groups).groupby("group")["seconds"].sum()
tables.glue_all(
    {
        "hyp_min": f"{spent['hypotheses'] / 60:.0f}",
        "hyp_ifs": ", ".join(f"{f:g}" for f in params.prof.hypothesis_ifs),
        "explain_min": f"{spent['explain'] / 60:.0f}",
        "ladder_cost": ch5.ladder_cost_text(spent.drop(["hypotheses", "explain"]).sum() / 60, wider),
    }
)

# %% [markdown]
# As recorded by the results (one-thread wall seconds, on the machines that made them: their
# provenance names the CPU), the hypotheses' sweeps at IF {glue:text}`hyp_ifs` took
# {glue:text}`hyp_min` minutes (a sweep shared with chapter 3, such as per-tensor weights,
# counted again) and the integer runtime and the curvature {glue:text}`explain_min` minutes, all
# from the book's trained weights. {glue:text}`ladder_cost` Reproduce them with `make runs
# PROFILE=cpu RUN_ARGS='--stage hypotheses --jobs 2'`, `RUN_ARGS='--stage explain --jobs 2'` and
# `RUN_ARGS='--stage ladder --jobs 2'`.
#
# ## What this chapter showed
#
# Under {glue:text}`n_hypotheses` stated quantizers on the same models, the largest 6-bit Δ of
# the baseline is {glue:text}`max_delta6` points (“{glue:text}`max_delta6_variant`”;
# {glue:text}`max_reading6`), against the blog's {glue:text}`blog_delta6` and
# {glue:text}`default_delta6` under the default quantizer ({glue:text}`default_reading6`).
# {glue:text}`pattern_text` Quantizing the logits alone adds to the baseline's loss through
# argmax ties resolved toward the head: {glue:text}`tie_text` points. Claim 3 holds for both
# models under {glue:text}`claim3_conditions`. The simulated quantization agrees with a real
# integer runtime on at least {glue:text}`int_agree_min`% of test images. At
# {glue:text}`mech_bits_lo` bits, per-class curvature {glue:text}`mech_reading_lo`
# (|ρ(trace)| − |ρ(count)| = {glue:text}`mech_diff_lo`). {glue:text}`ladder_answer`
