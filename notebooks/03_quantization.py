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
# **The question.** The blog quantizes the weights of its baseline and decoupled (cRT) models at
# IF 0.01 and reports that going from 32 to 6 bits costs the baseline
# {glue:text}`blog_drop6_baseline_head` points on the head classes and
# {glue:text}`blog_drop6_baseline_tail` on the tail, and the decoupled model
# {glue:text}`blog_drop6_crt_head` and {glue:text}`blog_drop6_crt_tail` (its Figs. 7 and 8). Its
# claim: **lower bit-widths hurt tail classes much more than head classes.**
#
# **The answer here.** Write Δ for the tail's accuracy drop minus the head's (points; positive:
# the tail pays more). With the quantizer stated below (per channel, min-max, BatchNorm folded),
# at IF {glue:text}`if_lo` and over {glue:text}`n_seeds` trained models (mean and two-sided 95%
# interval over seeds), Δ is {glue:text}`seed_delta_baseline_6` for the baseline and
# {glue:text}`seed_delta_crt_6` for cRT at 6 bits ({glue:text}`seed_reading_baseline_6`;
# {glue:text}`seed_reading_crt_6`), {glue:text}`seed_delta_baseline_4` and
# {glue:text}`seed_delta_crt_4` at 4 bits, and {glue:text}`seed_delta_baseline_low` and
# {glue:text}`seed_delta_crt_low` at {glue:text}`lowest_bits` bits ({glue:text}`seed_reading_baseline_low`;
# {glue:text}`seed_reading_crt_low`). Claim 3, judged by the study's rule (the tail must lose at
# least {glue:text}`much_more` point more, the whole interval over seeds agreeing):
# **{glue:text}`claim3_where`** with this quantizer. The blog's 6-bit pattern does not
# reproduce here; chapter 5 asks which quantizer would produce it.
#
# The chapter states the quantizer, sweeps the bit-width for every model of chapters 1 and 2,
# tests the claim on paired predictions, asks *which* images change their prediction, and
# ablates each quantizer choice the blog left open.
#
# *Rerun this chapter* with your own parameters, e.g. `make chapter CHAPTER=03_quantization
# PARAMS="-p seeds '[0, 1]' -p n_boot 500"`; the cell below lists them.

# %% tags=["parameters", "hide-cell"]
profile = "cpu"  # which stored results to show: smoke | cpu | paper
compute = False  # True: produce missing runs (the book build never does)
imbalance_factors = None  # None: the profile's imbalance factors, e.g. [0.1, 0.02, 0.01]
seeds = None  # None: the profile's seeds, e.g. [0, 1, 2]
variants = None  # None: all quantizer variants (ltmpq.config.QUANT_ABLATIONS), e.g. ["default"]
n_boot = 2000  # bootstrap resamples of the test images for the paired tests

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from IPython.display import display

from ltmpq import artifacts, blog, claims, frames, load, plotting, tables, verdicts
from ltmpq.analysis import ch3_quantization as ch3
from ltmpq.data import blog_head_tail
from ltmpq.params import QuantizationParams
from ltmpq.quantization import clipping_profile
from ltmpq.vocab import BLOG_MODELS, CLASSES, FLOAT, METHOD_LABELS, METHODS

params = QuantizationParams(profile, compute, imbalance_factors, seeds, variants, n_boot)
plotting.setup()
s1 = load.stage1_results(params)
qres = load.quantized_results(params, params.variant_names)
default = qres["default"]
frame = frames.quant_frame(qres)
drops = frames.drop_frame(frame)
ifs = sorted({c.imbalance_factor for c in s1}, reverse=True)
f_lo, f_blog = min(ifs), ch3.blog_if(ifs)
bits = frames.bits_order(frame["bits"].unique())
qbits = [b for b in bits if b != FLOAT]
head, tail = blog_head_tail().values()
n_seeds = len({c.seed for c in s1})
summary = ch3.accuracy_summary(frame)
paired = ch3.paired_tests(default, s1, qbits, head, tail, n_boot)
deltas = ch3.seed_deltas(drops)
c3 = claims.claim3(drops, params.prof.quant_bits)
flips = ch3.flips(default, s1, f_lo, qbits, head, tail)
abl = ch3.ablations(drops, list(qres))
tables.glue_all({
    "data_note": load.data_note(s1), **ch3.setup_facts(params.prof.quant, s1, qbits, len(qres) - 1, n_boot),
    **ch3.drop_facts(drops, qbits, f_blog), **ch3.paired_facts(paired, qbits),
    **ch3.flip_facts(flips, qbits[-1]), **ch3.ablation_facts(frame, abl, list(qres)),
    **claims.part_facts(c3), **ch3.seed_delta_facts(deltas, qbits),
    "claim3_where": claims.claim_conditions(claims.verdict_table(c3))[3],
})  # fmt: skip

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
d = frame[(frame["variant"] == "default") & frame["metric"].isin(["head", "tail", "worst_class"])]
g = sns.catplot(
    d.assign(method=d["method"].map(METHOD_LABELS)), kind="point", x="bits", y="value", hue="method",
    row="metric", col="imbalance_factor", order=bits, row_order=["head", "tail", "worst_class"],
    col_order=ifs, hue_order=[METHOD_LABELS[m] for m in METHODS], errorbar=plotting.t_interval, dodge=0.4,
    markersize=3, linewidth=1.2, height=2.6, aspect=1.4, sharey="row",
)  # fmt: skip
g.set_titles("{row_name} accuracy, IF = {col_name}").set_axis_labels("weight bits", "accuracy (%)")
g.figure.suptitle("Test accuracy of every model as its weights lose bits (95% CI over seeds)", y=1.02)
plt.show()

# %% [markdown]
# The full table (mean ± 95% CI over seeds; worst = the lowest per-class accuracy):

# %% tags=["hide-input", "hide-output"]
tables.table(ch3.accuracy_table(summary))

# %% [markdown]
# ## The blog's Figs. 7 and 8 beside ours
#
# The blog reports head and tail accuracy at IF 0.01 for the baseline and the decoupled model
# (cRT) at 32, 8 and 6 bits. The same cells from our runs, with the difference (ours - blog):

# %% tags=["hide-input"]
tables.table(ch3.fig78_table(summary, f_blog))

# %% tags=["hide-input"]
d = frame[
    (frame["variant"] == "default")
    & (frame["imbalance_factor"] == f_blog)
    & frame["metric"].isin(["head", "tail"])
]
plotting.bar_panels(
    d, panel="method", x="bits", hue="metric", order=bits, hue_order=["head", "tail"], panels=BLOG_MODELS,
    blog=blog.fig78_bars(bits), titles=lambda m: f"{METHOD_LABELS[m]}, IF = {f_blog:g}", panel_width=5.5,
    height=3.6,
    xticklabels=["float" if b == FLOAT else f"{b}-bit" for b in bits],
    suptitle="Figs. 7/8: head and tail accuracy against weight bits (bars: ours, diamonds: blog)",
)  # fmt: skip
plt.show()

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
# ## Is the tail hit harder?
#
# Each seed's model is evaluated at float and at $b$ bits on the *same* test images, so the
# comparison is paired. The statistic is
#
# $$ \Delta = \text{drop}_\text{tail} - \text{drop}_\text{head}, \qquad
#    \text{drop}_g = \text{acc}_g(\text{float}) - \text{acc}_g(b\text{ bits}), $$
#
# averaged over seeds; $\Delta > 0$ means the tail pays more. The headline interval is over
# seeds: each trained model gives one Δ, and the two-sided 95% t-interval over them carries the
# variation between trained models as well as the test-set noise. The dashed line is the
# practical threshold of claim 3's "much more", {glue:text}`much_more` point.

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, len(ifs), figsize=(3.7 * len(ifs), 3.4), sharey=True, squeeze=False)
for ax, f in zip(axes[0], ifs, strict=True):
    sub = deltas[deltas["imbalance_factor"] == f]
    for k, m in enumerate(METHODS):
        d = sub[sub["method"] == m].set_index("bits").reindex(qbits)
        err = [d["delta"] - d["ci_low"], d["ci_high"] - d["delta"]]
        x = np.arange(len(qbits)) + (k - 2) * 0.12
        ax.errorbar(x, d["delta"], yerr=err, fmt="o-", ms=3, lw=1, capsize=2, label=METHOD_LABELS[m])
    ax.axhline(0, color="grey", lw=1)
    ax.axhline(verdicts.MUCH_MORE, color="grey", lw=1, ls="--")
    ax.set_xticks(range(len(qbits)), [f"{b}-bit" for b in qbits])
    ax.set_title(f"IF = {f:g}")
axes[0][0].text(
    -0.3, verdicts.MUCH_MORE + 0.4, f"{verdicts.MUCH_MORE:g} point: 'much more'", fontsize=7, color="grey"
)
axes[0][0].set_ylabel("Δ = tail drop − head drop (points)")
axes[0][0].legend(fontsize="small", ncols=5, loc="upper left", bbox_to_anchor=(0, -0.15))
fig.suptitle(f"Does quantization cost the tail more? (mean and 95% CI over {n_seeds} seeds)", y=1.02)
plt.show()

# %% [markdown]
# A second, sharper question conditions on *these* trained models: is Δ larger than the test
# set's sampling noise? Each seed's model is evaluated at float and at $b$ bits on the same test
# images, so a paired bootstrap over test images ({glue:text}`n_boot` resamples within each
# class) gives a two-sided 95% interval and p-value per imbalance factor, model and bit-width;
# the {glue:text}`n_tests` p-values form one Benjamini-Hochberg family. After the correction,
# the tail pays significantly more in {glue:text}`n_sig` comparisons (bit-widths:
# {glue:text}`sig_bits`) and the head in {glue:text}`n_sig_head`; the interval lies above the
# practical threshold of {glue:text}`much_more` point in {glue:text}`n_much_more`. At IF
# {glue:text}`if_lo` and {glue:text}`b6` bits, Δ is {glue:text}`delta_b6_baseline` points for
# the baseline and {glue:text}`delta_b6_crt` for cRT; at {glue:text}`lowest_bits` bits,
# {glue:text}`delta_low_baseline` (q = {glue:text}`q_low_baseline`) and
# {glue:text}`delta_low_crt` (q = {glue:text}`q_low_crt`). Over imbalance factors and models Δ
# ranges {glue:text}`delta_range_table` points. Every comparison, with both intervals:
# {download}`chapter 3's paired tests (CSV) <data/03_quantization_paired.csv>`.

# %% tags=["hide-input", "hide-output"]
tables.download(ch3.paired_table(paired), "03_quantization_paired")
tables.table(ch3.paired_table(paired), precision=3)

# %% [markdown]
# ## Which classes lose, and how reliably
#
# Change of each class's accuracy from float, mean over seeds, at IF = {glue:text}`if_lo`
# (red: lost accuracy, blue: gained). Classes are ordered by training count (0 = most images).

# %% tags=["hide-input"]
change = ch3.per_class_change(default, f_lo)
lim = max(1.0, float(np.nanpercentile(np.abs(change["change"]), 99)))
fig, axes = plt.subplots(1, len(BLOG_MODELS), figsize=(11, 3.2), sharey=True)
for ax, m in zip(axes, BLOG_MODELS, strict=True):
    grid = ch3.change_grid(change, m, qbits)
    plotting.diverging_heatmap(ax, grid, label="change from float (points)", lim=lim, cbar=ax is axes[-1])
    ax.set(title=f"{METHOD_LABELS[m]}, IF = {f_lo:g}", xlabel="class (0 = most training images)",
           ylabel="weight bits" if ax is axes[0] else "")  # fmt: skip
plt.show()

# %% [markdown]
# How reliable are these per-class changes? For each seed, an exact McNemar test compares each
# class's {glue:text}`n_test_class` test images at float and at $b$ bits; the p-values of the classes ×
# bit-widths of one seed are Benjamini-Hochberg corrected. The table counts, per class, the seeds
# in which that class's accuracy dropped significantly (q < 0.05):

# %% tags=["hide-input"]
tables.table(ch3.class_drop_counts(ch3.class_drop_tests(default, s1, f_lo, qbits), qbits, n_seeds))

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
tables.table(flips)

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
tables.table(ch3.exemplar_table(default, s1, f_lo, qbits, head, tail))

# %% tags=["hide-input"]
b_show = "4" if "4" in qbits else qbits[-1]  # where the models are compressed hard but still work
ex = ch3.exemplars(default, s1, f_lo, b_show)
tables.glue_all(ch3.exemplar_facts(ex, b_show, tail))
images = load.test_images(next(iter(default)))  # the stored test split's images; None without CIFAR-10
picks = ch3.exemplar_picks(ex)
if images is not None and len(picks):
    fig, axes = plt.subplots(1, len(picks), figsize=(1.45 * len(picks), 2.2))
    for ax, i in zip(np.atleast_1d(axes), picks, strict=True):
        ax.imshow(images[i])
        ax.set_axis_off()
        true, f_pred, q_pred = (CLASSES[v[i]] for v in (ex["labels"], ex["float"], ex["quantized"]))
        ax.set_title(f"true {true}\nfloat {f_pred}\n{b_show}-bit {q_pred}", fontsize=7)
    fig.suptitle(f"Compression-identified exemplars, baseline, IF = {f_lo:g}, {b_show} bits", y=1.08)
    plt.show()

# %% [markdown]
# At {glue:text}`cie_bits` bits there are {glue:text}`cie_n` CIEs, {glue:text}`cie_tail_share`%
# of them from tail classes (which are {glue:text}`tail_share_test`% of the test set).
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
shown = abl[abl["variant"].isin(ch3.shown_variants(list(qres)))]
size = (0.75 * len(ifs) * len(qbits) + 3, 2 * (0.34 * shown["variant"].nunique() + 1.5))
fig, axes = plt.subplots(2, 1, figsize=size, sharex=True)
lim = max(1.0, float(np.nanmax(np.abs(shown["delta"]))))
for ax, m in zip(axes, BLOG_MODELS, strict=True):
    delta, mark = ch3.ablation_grid(shown, m, ifs, qbits)
    delta.index, mark.index = delta.index.map(ch3.variant_label), mark.index.map(ch3.variant_label)
    plotting.diverging_heatmap(ax, delta, annot=mark, fmt="", cmap="PuOr_r", label="Δ (points)", lim=lim,
                               fontsize=6.5)  # fmt: skip
    for x in range(len(qbits), delta.shape[1], len(qbits)):
        ax.axvline(x, color="white", lw=3)
    ax.set(xlabel="", ylabel="")
    ax.set_title(METHOD_LABELS[m], loc="left", pad=20, fontweight="bold")
    ax.set_xticks(
        np.arange(delta.shape[1]) + 0.5, [f"{b}-bit" for _ in ifs for b in qbits], rotation=0, fontsize=8
    )
    for i, f in enumerate(ifs):  # one label per imbalance factor, above its block of bit-widths
        ax.text((i + 0.5) * len(qbits), -0.15, f"IF {f:g}", ha="center", va="bottom", fontsize=9)
fig.tight_layout()
fig.suptitle(
    "Quantizer ablations: who pays for the lost bits? (* interval excludes 0, ★ differs from default)", y=1.02
)
plt.show()

# %% [markdown]
# The same numbers with their 95% intervals over seeds:

# %% tags=["hide-input", "hide-output"]
tables.table(ch3.ablation_table(shown))

# %% [markdown]
# And what each variant does to accuracy itself, at IF = {glue:text}`if_lo` (mean over seeds;
# the table below the figure has every number):

# %% tags=["hide-input"]
acc = ch3.variant_accuracy(frame[frame["variant"].isin(ch3.shown_variants(list(qres)))], f_lo)
names = ch3.shown_variants(list(qres))
acc = acc.assign(variant=acc["variant"].map(ch3.variant_label))
names = [ch3.variant_label(v) for v in names]
palette = dict(zip(names, ["black", *sns.color_palette("tab10", len(names) - 1)], strict=True))
g = sns.catplot(
    acc[acc["metric"].isin(["overall", "tail"])].assign(method=lambda d: d["method"].map(METHOD_LABELS)),
    kind="point", x="bits", y="value", hue="variant", row="metric", col="method", order=bits,
    row_order=["overall", "tail"], hue_order=names[::-1],  # the default last, on top
    palette=palette, errorbar=None, markersize=3, linewidth=1.2, height=2.8, aspect=1.5, sharey="row",
)  # fmt: skip
g.set_titles("{row_name} accuracy, {col_name}, IF = " + f"{f_lo:g}").set_axis_labels(
    "weight bits", "accuracy (%)"
)
plt.show()

# %% tags=["hide-input", "hide-output"]
tables.table(ch3.variant_accuracy_table(acc, bits))

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
# the committed weights of the strongest imbalance's models (no data needed): how MSE clipping cuts
profiles = [
    clipping_profile(artifacts.stage1_weights(c)[0], int(qbits[-1])) for c in s1 if c.imbalance_factor == f_lo
]
tables.glue_all(ch3.clipping_facts(profiles, frame, f_lo, qbits[-1]))

# %% [markdown]
# Squared-error (MSE) clipping, the range setting the PTQ literature usually prefers
# {cite:p}`nagel2021white`, loses more than min-max here at {glue:text}`mse_bits` bits. The
# search itself is right: on the same weights it picks the clipping Brevitas's per-channel MSE
# quantizer picks, within one step of its grid, with the same weight error (a test checks it).
# At {glue:text}`mse_bits` bits it clips each channel to {glue:text}`mse_alpha` of its largest
# magnitude (mean over layers and the IF {glue:text}`if_lo` models), which more than halves the
# relative weight error ({glue:text}`mse_err_minmax`% → {glue:text}`mse_err_mse`%), and yet
# the baseline's tail accuracy falls from {glue:text}`mse_tail_default`% to
# {glue:text}`mse_tail_mse`%. The largest weights of a channel carry more of its output than
# their share of the squared weight error says: an error budget counted on the weights is not
# one counted on the layer's output, which output-aware post-training methods (GPTQ, for one)
# minimise instead.

# %% tags=["hide-input"]
cal = ch3.calibration_counts(qres)
if cal is not None:
    display(tables.table(cal).set_caption("calibration images per class (first seed)"))

# %% [markdown]
# ## Cost of this chapter

# %% tags=["hide-input"]
cost, facts = ch3.cost(qres)
tables.glue_all(facts)
tables.table(cost)

# %% [markdown]
# The {glue:text}`n_sweeps` sweeps behind this chapter took {glue:text}`wall_min` minutes of
# compute from the committed stage-1 weights ({glue:text}`wall_default_min` for the default
# quantizer alone; torch threads per process: {glue:text}`threads`), evaluating the validation
# split and the test set at each bit-width. Reproduce them, two runs at a time and without
# training, with `make runs PROFILE=cpu RUN_ARGS='--stage quantized --jobs 2'`.
#
# ## What this chapter showed
#
# With a per-channel, min-max, BatchNorm-folded quantizer, no model of chapters 1 and 2 loses
# more than {glue:text}`max_drop_b6` points of overall accuracy (mean over seeds) at
# {glue:text}`b6` bits. Across trained models (intervals over seeds), the tail's extra loss Δ at
# IF {glue:text}`if_lo` is {glue:text}`seed_delta_baseline_6` (baseline) and
# {glue:text}`seed_delta_crt_6` (cRT) at 6 bits and {glue:text}`seed_delta_baseline_low` and
# {glue:text}`seed_delta_crt_low` at {glue:text}`lowest_bits` bits: claim 3
# {glue:text}`claim3_where`. Conditioned on these models (paired bootstrap over test images),
# the tail pays significantly more in
# {glue:text}`n_sig` of {glue:text}`n_tests` comparisons and the head in
# {glue:text}`n_sig_head`; at {glue:text}`first_sig_bits`, the highest bit-width where the tail
# pays more, Δ is at most {glue:text}`first_sig_max` points. At {glue:text}`lowest_bits` bits
# the baseline's correct tail predictions are {glue:text}`fragile_word` fragile than its correct
# head predictions: {glue:text}`fragile_reading`. Of the quantizer choices the blog left
# unstated, {glue:text}`top_variant` moves tail accuracy most. The parts of claim 3, each
# judged by the study's rule: {glue:text}`claim3_parts`. Chapter 4 asks whether spending the
# bits unevenly across layers, by a tail-aware sensitivity, wins the tail back.
