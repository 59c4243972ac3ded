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
# The study's sharpest disagreement with the blog is its claim 3 at its own bit-width. Going
# from 32 to 6 bits cost the blog's baseline {glue:text}`blog_base_head` points on the head and
# {glue:text}`blog_base_tail` on the tail (its Figs. 7/8); chapter 3's default quantizer costs
# ours {glue:text}`default_base6` (head / tail, mean ± 95% CI over seeds). Six-bit weight-only
# post-training quantization is nearly free on CIFAR CNNs in the literature too, which leaves the
# question this chapter answers: **what would a quantizer have to do to produce the blog's
# numbers?** It runs named quantizer hypotheses on the same models, checks that our simulated
# quantization means what a real integer kernel computes, and tests a mechanism proposed for why
# rare classes lose more: their larger curvature.

# %% tags=["parameters"]
profile = "cpu"  # which stored results to show: smoke | cpu
compute = False  # True: produce missing runs (the book build never does)
imbalance_factor = 0.01  # the blog's Figs. 7/8 setting
seeds = None  # None: the profile's seeds, e.g. [0, 1, 2]
n_boot = 2000  # bootstrap resamples (seeds x classes) of the mechanism's correlations

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import seaborn as sns
from IPython.display import display

from ltmpq import ChapterParams, frames, load, plotting, tables
from ltmpq.analysis import ch5_six_bits as ch5
from ltmpq.analysis.ch3_quantization import blog_drop
from ltmpq.config import QUANT_HYPOTHESES, QUANT_HYPOTHESIS_DESCRIPTIONS
from ltmpq.uncertainty import mean_ci

params = ChapterParams(profile, compute, (imbalance_factor,), seeds)
plotting.setup()
names = ["default", *QUANT_HYPOTHESES]
qres = load.quantized_results(params, names)
drops = frames.drop_frame(frames.quant_frame(qres))
table = ch5.hypothesis_drops(drops, imbalance_factor)
base6 = table[
    (table["variant"] == "default") & (table["method"] == "baseline") & (table["bits"] == "6")
].iloc[0]
tables.glue_all(
    {
        "data_note": load.data_note(qres["default"]),
        "n_seeds": len(qres["default"]),
        "f_blog": f"{imbalance_factor:g}",
        "blog_base_head": f"{blog_drop('baseline', 'head'):.1f}",
        "blog_base_tail": f"{blog_drop('baseline', 'tail'):.1f}",
        "blog_crt_head": f"{blog_drop('crt', 'head'):.1f}",
        "blog_crt_tail": f"{blog_drop('crt', 'tail'):.1f}",
        "default_base6": f"{tables.pm(base6['head_drop'], base6['head_ci'])} / "
        f"{tables.pm(base6['tail_drop'], base6['tail_ci'])}",
        **ch5.hypothesis_facts(table),
    }
)

# %% [markdown]
# ## Quantizer hypotheses
#
# Each hypothesis is a stated configuration of `ltmpq`'s quantizer (`ltmpq.config.QUANT_HYPOTHESES`),
# applied to chapter 3's default (signed symmetric weights per output channel, min-max, BatchNorm
# folded, float activations) and swept over the same bit-widths on the same
# {glue:text}`n_seeds` models per model kind, at IF = {glue:text}`f_blog`, on
# {glue:text}`data_note`. "W=A" quantizes every activation to the weights' bit-width (W8A8 ...
# W4A4), per tensor, with ranges calibrated on long-tailed training images, as a deployment
# would. Each piece is tested against an independent reference on random tensors
# (`tests/test_hypotheses.py`).
#
# Cells: head / tail accuracy lost from float (points, mean ± 95% CI over seeds). The distance
# is the mean absolute difference from the blog's eight cells (both models, head and tail, 8 and
# 6 bits). The blog's 6-bit pattern: the baseline's tail loses at least {glue:text}`tail_hit`
# points while its head loses at most {glue:text}`head_spared`.

# %% tags=["hide-input"]
# the descriptions apart, so that the numbers fit the page
hyp_table = ch5.hypothesis_table(table, QUANT_HYPOTHESIS_DESCRIPTIONS)
display(tables.table(hyp_table[["what"]], scroll=True))
numbers = hyp_table.drop(columns="what").rename(columns=lambda c: ", ".join(c) if isinstance(c, tuple) else c)
display(tables.table(numbers, scroll=True, precision=1))

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(7.5, 5))
six = table[(table["method"] == "baseline") & (table["bits"] == "6")]
palette = sns.color_palette("tab10", len(six))
ax.axvspan(-10, ch5.HEAD_SPARED, ymin=0, ymax=1, color="0.92", zorder=0)
ax.axhline(ch5.TAIL_HIT, color="0.6", ls=":", lw=1)
for i, r in enumerate(six.itertuples(index=False)):
    ax.errorbar(
        r.head_drop,
        r.tail_drop,
        xerr=r.head_ci,
        yerr=r.tail_ci,
        fmt="o",
        ms=5,
        capsize=2,
        color="black" if r.variant == "default" else palette[i % len(palette)],
        label=r.variant,
    )
ax.scatter(
    blog_drop("baseline", "head"), blog_drop("baseline", "tail"), **{**plotting.BLOG_STYLE, "label": "blog"}
)
lo = min(-1.0, float(six["head_drop"].min()) - 1)
hi_x = max(float((six["head_drop"] + six["head_ci"]).max()), 2 * ch5.HEAD_SPARED) + 1
hi_y = max(float((six["tail_drop"] + six["tail_ci"]).max()), blog_drop("baseline", "tail")) + 1
ax.set(
    xlim=(lo, hi_x),
    ylim=(min(-1.0, float(six["tail_drop"].min()) - 1), hi_y),
    xlabel="head accuracy lost at 6 bits (points)",
    ylabel="tail accuracy lost at 6 bits (points)",
    title=f"Baseline, float → 6 bits, IF = {imbalance_factor:g}: each quantizer (shaded: the blog's pattern)",
)
ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
plt.show()

# %% [markdown]
# Of the {glue:text}`n_hypotheses` hypotheses, the blog's 6-bit pattern appears under:
# **{glue:text}`pattern_variants`**. The closest to the blog's cells is
# {glue:text}`closest` (mean distance {glue:text}`closest_distance` points, against
# {glue:text}`default_distance` for the default quantizer). The largest 6-bit tail loss of the
# baseline, under {glue:text}`worst6_variant`, is {glue:text}`worst6_tail` points, with the head
# losing {glue:text}`worst6_head`; at 4 bits the largest, under {glue:text}`worst4_variant`, is
# {glue:text}`worst4_tail` on the tail against {glue:text}`worst4_head` on the head. A plausible
# reason why quantized logits hurt the tail in particular: a coarse grid merges close logits
# into ties, and an argmax resolves a tie to the first class, the most frequent one (torch's
# and most integer runtimes' convention).
#
# ### At other imbalance factors
#
# The same quantizers on the models of every imbalance factor they ran at: Δ = tail drop − head
# drop of the baseline (points, mean ± 95% CI over seeds; positive: the tail pays more).

# %% tags=["hide-input"]
at_ifs = ChapterParams(profile, compute, params.prof.hypothesis_ifs, seeds)
qres_ifs = load.quantized_results(at_ifs, names)
drops_ifs = frames.drop_frame(frames.quant_frame(qres_ifs))
tables.table(ch5.delta_by_imbalance(drops_ifs).loc[names], scroll=True)

# %% [markdown]
# ### Claim 3 under each quantizer
#
# Claim 3 ("lower bit-widths hurt the tail much more than the head") judged by chapter 4's rule
# under each quantizer: at each bit-width, the tail must lose more than one point more than the
# head, with the whole 95% interval over seeds, for the baseline and for cRT.

# %% tags=["hide-input"]
c3 = ch5.claim3_by_variant(drops, params.prof.quant_bits, names)
tables.glue_all(ch5.claim3_conditions(c3))
view = c3.assign(cell=c3["verdict"] + " (" + c3["estimate [95% CI]"] + ")")
tables.table(view.pivot(index="variant", columns="part", values="cell").loc[names], scroll=True)

# %% [markdown]
# Parts as in chapter 4's verdict table (3a/3b: 6 bits, 3c/3d: 4 bits, 3e/3f: the fewest bits;
# baseline, then cRT). Claim 3 holds for both models under: {glue:text}`claim3_conditions`.
# Under the default quantizer it is {glue:text}`claim3_default`.
#
# ## Real integer inference
#
# Our quantization is simulated: float arithmetic on rounded weights and activations. Does a
# real integer kernel compute the same thing? The default quantizer with 8-bit activations
# (W8A8, calibrated as above) is rebuilt from the *same* scales with torch.ao's quantized
# modules and run by PyTorch's x86 integer kernels (`ltmpq.integer`), beside the simulation, on
# all test images. The integer model also quantizes the input image (the simulation keeps it in
# float); "rounded input" feeds the simulation that same rounded image, so what is left is the
# kernels' own doing.

# %% tags=["hide-input"]
eres = load.explain_results(ChapterParams(profile, compute, None, seeds))
ints = ch5.integer_frame(eres)
tables.glue_all(ch5.integer_facts(ints))
tables.table(ints.set_index(["imbalance_factor", "seed", "head"]), precision=2)

# %% [markdown]
# Over {glue:text}`int_runs` models and both classifiers, the integer runtime's predictions
# agree with the simulation's on at least {glue:text}`int_agree_min`% of test images (mean
# {glue:text}`int_agree_mean`%), which {glue:text}`int_goal_met` the goal of
# {glue:text}`int_goal`%; with the simulation fed the same rounded input, at least
# {glue:text}`int_rounded_min`%. Accuracies differ by at most {glue:text}`int_acc_diff` points
# overall and {glue:text}`int_class_diff` on any class. {glue:text}`int_conclusion` (fbgemm's
# int16 accumulation saturates 8-bit activations on CPUs without VNNI instructions, which is why
# torch's default x86 observers reduce activations to 7 bits; `ltmpq.integer` warns there, and
# the tests cover both.)
#
# ## The mechanism: do the rare classes have more curvature?
#
# {cite:t}`liu2025unfairness` argue that groups with less training data have larger gradient
# norms and Hessian traces and therefore lose more under quantization. Per class, on the
# published models: the Hessian trace of the class's mean cross-entropy in the 16 quantized
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
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
b = min(bits)
for ax, (images, head) in zip(axes, [("val", "baseline"), ("val", "crt")], strict=True):
    d = curv[(curv["images_from"] == images) & (curv["head"] == head)]
    g = d.groupby("class")[["trace", f"drop_{b}"]].agg(["mean", lambda v: mean_ci(v.to_numpy())[1]])
    ax.errorbar(
        g[("trace", "mean")],
        g[(f"drop_{b}", "mean")],
        xerr=g[("trace", "<lambda_0>")],
        yerr=g[(f"drop_{b}", "<lambda_0>")],
        fmt="o",
        capsize=2,
    )
    for c, x, y in zip(g.index, g[("trace", "mean")], g[(f"drop_{b}", "mean")], strict=True):
        ax.annotate(str(c), (x, y), textcoords="offset points", xytext=(4, 3), fontsize=8)
    ax.set(
        xscale="log",
        xlabel="Hessian trace of the class's loss (validation images)",
        ylabel=f"test accuracy lost at {b} bits (points)",
        title=f"{head}: classes 0 (most data) to 9",
    )
    ax.axhline(0, color="black", lw=0.6)
fig.tight_layout()
plt.show()

# %% [markdown]
# For the baseline on validation images, at {glue:text}`mech_bits_lo` bits the Hessian trace's
# rank correlation with the per-class drop is {glue:text}`mech_trace_lo` and the gradient norm's
# {glue:text}`mech_grad_lo`, against {glue:text}`mech_count_lo` for −log of the training count.
# Given the count, the trace's partial correlation is {glue:text}`mech_partial_lo`; |ρ(trace)| −
# |ρ(count)| = {glue:text}`mech_diff_lo` (positive: curvature ranks the classes' losses better
# than their training-set size). At {glue:text}`mech_bits_hi` bits: {glue:text}`mech_trace_hi`,
# {glue:text}`mech_count_hi`, partial {glue:text}`mech_partial_hi`, difference
# {glue:text}`mech_diff_hi`. With ten classes whose training counts fall monotonically, count and
# curvature are hard to separate; the intervals say how far these seeds can.
#
# ## Scale
#
# Does the head/tail asymmetry grow with the network, or with the classic VGG16 classifier (two
# 4096-wide fully connected layers with dropout 0.5, which the blog's "16 weight layers" may
# mean, and whose per-tensor scales cover a 4096 × 4096 matrix)? The scale ladder trains more
# models at IF = {glue:text}`ladder_if` with the v2 recipe, seeds {glue:text}`ladder_seeds`, and
# quantizes them with the default quantizer and with {glue:text}`ladder_hypothesis`
# ({glue:text}`ladder_check`). The first rung is the book's own models.

# %% tags=["hide-input"]
ladder_q, ladder_s1, ladder_missing = load.ladder_results(
    ChapterParams(profile, compute, params.prof.ladder_ifs, seeds), allow_missing=True
)
rung_cfgs = params.prof.ladder_rungs(next(iter(ladder_s1[params.prof.ladder_base])))
ladder = ch5.ladder_deltas(ch5.ladder_drops(ladder_q))
trend = ch5.ladder_trend(ladder, params.prof.ladder_base)
hyp = [v for v in params.prof.ladder_variants if v != "default"]
tables.glue_all(
    {
        "ladder_if": ", ".join(f"{f:g}" for f in params.prof.ladder_ifs),
        "ladder_seeds": ", ".join(map(str, params.prof.ladder_seeds)),
        "ladder_hypothesis": ", ".join(hyp) or "no hypothesis",
        "ladder_check": ch5.ladder_variant_check(
            ch5.hypothesis_facts(table)["closest"], params.prof.ladder_variants
        ),
        "ladder_summary": ch5.ladder_summary(trend, ladder_missing, params.prof.ladder_base),
        **ch5.ladder_facts(trend, params.prof.ladder_variants),
    }
)
tables.table(ch5.ladder_models(ladder_s1, rung_cfgs, ladder_missing), scroll=True, precision=1)

# %% [markdown]
# Per rung: its shape, forward multiply-accumulates per image (the cost of a training step up to
# a constant) and their ratio to the first rung's, the first rung's recorded training time scaled
# by that ratio (what a rung should cost on the machine the book's models trained on), and, for a
# computed rung, its float test accuracy and recorded training time. {glue:text}`ladder_summary`
#
# Head / tail drop from float and Δ = tail − head (points, mean ± 95% CI over seeds) at 6 and 4
# bits, per quantizer, model and rung:

# %% tags=["hide-input"]
tables.table(ch5.ladder_table(ladder), scroll=True)

# %% tags=["hide-input"]
if not trend.empty:
    g = sns.catplot(
        data=ladder.assign(model=ladder["method"].map({"baseline": "baseline", "crt": "cRT"})),
        x="rung", y="delta", hue="variant", col="bits", row="model", kind="point",
        errorbar=("ci", 95), dodge=0.3, height=2.8, aspect=1.4, col_order=["6", "4"],
    )  # fmt: skip
    g.set_axis_labels("", "Δ = tail − head drop (points)")
    g.set_titles("{row_name}, {col_name} bits")
    for ax in g.axes.flat:
        ax.axhline(0, color="black", lw=0.6)
    plt.show()

# %% [markdown]
# For the baseline, against the first rung (Welch 95% interval of the difference in Δ over
# seeds): under the default quantizer {glue:text}`ladder_trend_0`; under
# {glue:text}`ladder_hypothesis` {glue:text}`ladder_trend_1`. {glue:text}`ladder_comparison`
#
# ## What it cost

# %% tags=["hide-input"]
wider = [rung for rung in ladder_s1 if rung != params.prof.ladder_base]
groups = {
    "hypotheses": {(n, c): r for n in QUANT_HYPOTHESES for c, r in qres_ifs[n].items()},
    "explain": eres,
}
groups |= {rung: ladder_s1[rung] for rung in wider}
groups |= {f"{rung} {v}": by for rung in wider for v, by in ladder_q[rung].items()}
spent = frames.cost_frame(groups).groupby("group")["seconds"].sum()
cost = {
    "hyp_min": f"{spent['hypotheses'] / 60:.0f}",
    "hyp_ifs": ", ".join(f"{f:g}" for f in params.prof.hypothesis_ifs),
    "explain_min": f"{spent['explain'] / 60:.0f}",
    "ladder_min": f"{spent.drop(['hypotheses', 'explain']).sum() / 60:.0f}",
}
tables.glue_all(cost)

# %% [markdown]
# As recorded by the results (one-thread wall seconds, on the machines that made them: their
# provenance names the CPU), the hypotheses' sweeps at IF {glue:text}`hyp_ifs` took
# {glue:text}`hyp_min` minutes (a sweep shared with chapter 3, such as per-tensor weights,
# counted again) and the integer runtime and the curvature {glue:text}`explain_min` minutes, all
# from the committed weights; the computed rungs of the scale ladder, training included,
# {glue:text}`ladder_min` minutes. Reproduce them with `make runs PROFILE=cpu RUN_ARGS='--stage
# hypotheses --jobs 2'`, `RUN_ARGS='--stage explain --jobs 2'` and `RUN_ARGS='--stage ladder
# --jobs 2'`.
#
# ## What this chapter showed
#
# Under {glue:text}`n_hypotheses` stated quantizers on the same models, the blog's 6-bit pattern
# (tail −{glue:text}`tail_hit` or worse, head −{glue:text}`head_spared` or better) appears under:
# {glue:text}`pattern_variants`. Claim 3 holds for both models under:
# {glue:text}`claim3_conditions`. The simulated quantization agrees with a real integer runtime
# on at least {glue:text}`int_agree_min`% of test images. Per-class curvature against the drop
# at {glue:text}`mech_bits_lo` bits: ρ = {glue:text}`mech_trace_lo`, against
# {glue:text}`mech_count_lo` for training-set size. The scale ladder:
# {glue:text}`ladder_summary`
