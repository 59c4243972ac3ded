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
# # Decoupled training: does re-balancing the classifier close the gap?
#
# **The question.** {cite:t}`kang2020decoupling` observed that a network trained on long-tailed
# data with plain instance-balanced sampling already learns good *features* (the output of the
# layers before the last one); what is biased towards the frequent classes is mostly its last
# linear layer, the *classifier*. The blog (its section 3.2 and Table 1) keeps the chapter-1
# network frozen, re-trains only the classifier with class-balanced sampling (cRT) and claims:
# **decoupling narrows the head/tail gap, but a gap of more than 10 points remains at IF 0.01.**
# Its own Table 1 puts cRT's gap at IF 0.01 at {glue:text}`blog_gap_dec` points,
# {glue:text}`blog_gap_claim_consistent` that claim.
#
# **The answer here.** Over {glue:text}`n_seeds` stage-1 models per imbalance factor (mean and
# two-sided 95% interval over seeds), at IF {glue:text}`if_lo` head minus tail accuracy is
# {glue:text}`gap_lo_baseline_ci` points for the baseline and {glue:text}`gap_lo_crt_ci` after cRT
# (the blog's: {glue:text}`blog_gap_dec`; {glue:text}`crt_gap_vs_blog`). By the study's verdict
# rule "cRT narrows the gap" is **{glue:text}`part_2a`** and "more than 10 points remain"
# **{glue:text}`part_2b`**. cRT {glue:text}`crt_trade`: against the baseline on the same network,
# head accuracy changes by {glue:text}`crt_head_change` points ({glue:text}`crt_head_side`) and
# tail accuracy by {glue:text}`crt_tail_change` ({glue:text}`crt_tail_side`). Of the other
# re-balancing methods, tau-norm's choice of tau moves validation accuracy by at most
# {glue:text}`tau_spread_max` points in any run (what it changes comes from dropping the
# classifier's bias), and the other methods' gaps minus {glue:text}`best_method`'s, the smallest
# on average, are {glue:text}`others_vs_best`. {glue:text}`la_sentence`
#
# *Rerun this chapter* with your own parameters, e.g. `make chapter CHAPTER=02_decoupling
# PARAMS="-p seeds '[0, 1]'"`; the cell below lists them.

# %% tags=["parameters", "hide-cell"]
profile = "cpu"  # which stored results to show: smoke | cpu | paper
compute = False  # True: produce missing runs (the book build never does)
imbalance_factors = None  # None: the profile's imbalance factors, e.g. [0.1, 0.02, 0.01]
seeds = None  # None: the profile's seeds, e.g. [0, 1, 2]

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.lines import Line2D

from ltmpq import ChapterParams, blog, claims, frames, load, plotting, tables, verdicts
from ltmpq.analysis import ch1_evaluation as ch1
from ltmpq.analysis import ch2_decoupling as ch2
from ltmpq.vocab import METHOD_LABELS, methods_in

params = ChapterParams(profile, compute, imbalance_factors, seeds)
plotting.setup()
s1 = load.stage1_results(params)
dec = load.decoupled_results(params, logit_adjustment=True)
frame = frames.metrics_frame(s1, dec)
summary = frames.summarize(frame)
dcfg = params.prof.decouple
f_lo = min(c.imbalance_factor for c in s1)
ifs = sorted({c.imbalance_factor for c in s1}, reverse=True)  # mildest first
n_val = 10 * next(iter(s1)).val_per_class
choices = ch2.choices_frame(dec)
norms = ch2.classifier_norms(dec)
norm_t, tau_t = ch2.norm_table(norms), ch2.tau_table(dec, s1, dcfg.tau_grid)
epochs = {m: ch2.epoch_table(dec, m) for m in ("crt", "lws")}
tables.glue_all(
    {
        "data_note": load.data_note(s1),
        **ch2.setup_facts(
            dcfg, next(iter(s1)).val_per_class, s1[min(s1, key=lambda c: c.imbalance_factor)]["train_counts"]
        ),
        **ch2.gap_facts(frame, summary),
        **ch2.answer_facts(frame),
        **ch2.change_facts(frame, "crt"),
        **ch2.change_facts(frame, "tau_norm"),
        **ch2.best_gap_facts(frame),
        **claims.part_facts(claims.claim2(frame)),
        **ch2.norm_facts(norms, choices),
        **ch2.tau_facts(norm_t, tau_t, frame),
        **ch2.epoch_facts(epochs["crt"], s1, dcfg, n_val, "crt"),
        **ch2.epoch_facts(epochs["lws"], s1, dcfg, n_val, "lws"),
    }
)

# %% [markdown]
# ## The four ways to re-balance a classifier
#
# All four keep the stage-1 network (the *backbone*) frozen and change only how its features
# are turned into class scores {cite:p}`kang2020decoupling`:
#
# - **cRT** (classifier re-training): re-initialise the last layer and train it again with
#   class-balanced sampling (each class equally likely per draw);
# - **tau-norm**: no training; drop the last layer's bias and divide each class's weight vector
#   by its norm to the power $\tau$, $\tilde w_i = w_i / \lVert w_i \rVert^{\tau}$, which undoes
#   larger norms that frequent classes may acquire ($\tau = 0$ is the original classifier without
#   its bias, $\tau = 1$ fully normalised);
# - **LWS** (learnable weight scaling): keep the weights and learn one scale per class with
#   class-balanced sampling;
# - **NCM** (nearest class mean): classify by cosine similarity to each class's mean training
#   feature;
# - **logit adj.** (post-hoc logit adjustment, {cite:t}`menon2021logit`; not in the blog): no
#   training; subtract $\tau \log \pi_y$ from the baseline's logit of class $y$, $\pi_y$ being
#   the class's share of the training images, so that rare classes win more often ($\tau = 0$
#   is the baseline), $\tau$ chosen on the validation split from the same grid as tau-norm's.
#
# ## How stage 2 is run here
#
# Features are extracted once from each frozen stage-1 backbone (the input of the last layer,
# L16, for the long-tailed training images without augmentation, the validation split and the
# test set); every method then works on them in seconds. cRT and LWS train for
# {glue:text}`dec_epochs` epochs with class-balanced sampling and SGD with cosine decay; the epoch
# kept is the one with the best balanced accuracy (the mean of the per-class accuracies) on the
# **validation split**, and tau is chosen from {glue:text}`tau_grid` the same way. The test set
# is looked at once, after all choices are made. Numbers are percent on the balanced test set of
# {glue:text}`data_note`, mean ± two-sided 95% t-interval over seeds (or "a [b, c]": mean and
# interval).
#
# Where this differs from Kang et al.: their cRT sees augmented images through the frozen
# backbone, ours sees fixed features of un-augmented images; they train stage 2 for a fixed
# number of epochs, we keep the best epoch on validation; LWS scales here share the optimizer's
# weight decay ({glue:text}`dec_wd`, chosen on validation), which pulls them slightly towards
# zero. The validation split ({glue:text}`val_per_class` images per class) is held out of every
# class before the long-tailed draw, so it costs every class the same share: at the strongest
# imbalance the largest class keeps {glue:text}`n_largest` training images and the rarest
# {glue:text}`n_rarest`. Stage 2 uses one fixed seed, so the intervals reflect stage-1 and
# data-draw variation only.
#
# ## The blog's Table 1 beside ours

# %% tags=["hide-input"]
tables.table(ch2.table1(summary))

# %% [markdown]
# ## All four methods
#
# Every metric of every method and run, per seed:
# {download}`chapter 2's metrics per seed (CSV) <data/02_decoupling_metrics.csv>`.

# %% tags=["hide-input"]
tables.download(ch1.tidy_metrics(frame), "02_decoupling_metrics")
metrics = ["overall", "head", "tail", "worst_class"]
test = frame[frame["split"] == "test"].assign(method=lambda d: d["method"].map(METHOD_LABELS))
plotting.bar_panels(
    test,
    panel="imbalance_factor",
    x="metric",
    hue="method",
    order=metrics,
    hue_order=[METHOD_LABELS[m] for m in methods_in(frame["method"])],
    blog=blog.table1_bars(metrics, label=METHOD_LABELS.get),
    xticklabels=["overall", "head", "tail", "worst"],
    panel_width=3.8,
    suptitle="Stage-2 methods on frozen stage-1 backbones (bars: ours, diamonds: blog)",
)
plt.show()

# %% tags=["hide-input"]
tables.table(ch2.methods_table(summary), scroll=True)

# %% [markdown]
# ## The remaining head/tail gap
#
# The gap is computed per seed (head minus tail accuracy of the same run) and then averaged, so
# its interval reflects how consistently a method narrows it. Black diamonds mark the blog's own
# gaps from its Table 1 (baseline and cRT); the dashed line is the claim's threshold.

# %% tags=["hide-input"]
gaps = frames.gap_frame(frame).assign(method=lambda d: d["method"].map(METHOD_LABELS))
order = [METHOD_LABELS[m] for m in methods_in(frame["method"])]
fig, ax = plt.subplots(figsize=(8.5, 3.6))
sns.barplot(
    gaps,
    x="method",
    y="gap",
    hue="imbalance_factor",
    order=order,
    hue_order=ifs,
    palette=plotting.if_palette(ifs),
    errorbar=plotting.t_interval,
    capsize=0.1,
    err_kws={"linewidth": 1},
    ax=ax,
)
width = 0.8 / len(ifs)  # seaborn's dodged bar width
for (label, f), g in ch2.blog_gaps(ifs).items():
    x = order.index(label) - 0.4 + width * (ifs.index(f) + 0.5)
    ax.scatter([x], [g], **{**plotting.BLOG_STYLE, "label": None})
ax.axhline(verdicts.GAP_REMAINS, color="grey", ls="--", lw=1)
ax.axhline(0, color="black", lw=0.8)
ax.set(xlabel="", ylabel="head - tail accuracy (points)")
handles, labels = ax.get_legend_handles_labels()
handles += [
    Line2D([], [], **{k: v for k, v in plotting.BLOG_STYLE.items() if k in ("marker", "color")}, ls=""),
    Line2D([], [], color="grey", ls="--", lw=1),
]
labels += ["blog's gap (Table 1)", f"claim 2: more than {verdicts.GAP_REMAINS:g} points remain"]
ax.legend(handles, labels, title="IF", loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
plt.show()

# %% [markdown]
# At IF = {glue:text}`if_lo` the baseline's gap is {glue:text}`gap_lo_baseline` ±
# {glue:text}`gap_lo_ci_baseline` points and cRT's {glue:text}`gap_lo_crt` ±
# {glue:text}`gap_lo_ci_crt`. Against the baseline on the same stage-1 network (per seed), cRT's
# head accuracy changes by {glue:text}`crt_head_change` points ({glue:text}`crt_head_side`), its
# tail accuracy by {glue:text}`crt_tail_change` ({glue:text}`crt_tail_side`), its overall
# accuracy by {glue:text}`crt_overall_change` ({glue:text}`crt_overall_side`) and its worst-class
# accuracy by {glue:text}`crt_worst_class_change` ({glue:text}`crt_worst_class_side`). tau-norm
# leaves a gap of {glue:text}`gap_lo_tau_norm` ± {glue:text}`gap_lo_ci_tau_norm`, LWS
# {glue:text}`gap_lo_lws` ± {glue:text}`gap_lo_ci_lws` and NCM {glue:text}`gap_lo_ncm` ±
# {glue:text}`gap_lo_ci_ncm`. The mean gap closest to zero is {glue:text}`best_method`'s
# ({glue:text}`gap_lo_best`); each other method's gap minus it, per seed:
# {glue:text}`others_vs_best`. cRT narrows the gap (the per-seed reduction has a two-sided 95%
# interval above zero) at {glue:text}`crt_narrow_n` imbalance factors, and at IF =
# {glue:text}`if_lo` its gap {glue:text}`crt_gap_closed` (lower end of its interval:
# {glue:text}`crt_gap_lower` points).
#
# The blog's own Table 1 puts the cRT gap at IF 0.01 at {glue:text}`blog_gap_dec` points —
# {glue:text}`blog_gap_claim_consistent` its claim that "more than 10 points" remain; ours is
# {glue:text}`gap_lo_crt_ci` ({glue:text}`crt_gap_vs_blog`). By the study's verdict rule (chapter
# 4's table), on our runs "cRT narrows the gap" (part 2a) is **{glue:text}`part_2a`** and "more
# than 10 points remain" (part 2b) **{glue:text}`part_2b`**.
#
# ## What the validation split chose

# %% tags=["hide-input"]
tables.table(ch2.choices_table(choices), precision=2)

# %% [markdown]
# ### tau-norm: the norms have little to undo
#
# tau-norm can only undo what is in the weight norms. Kang et al. found the norms of the stage-1
# classifier's class vectors to grow with the class's training count. Ours differ between
# classes (at IF {glue:text}`if_lo` the largest norm is {glue:text}`norm_ratio_seeds` times the
# smallest, per seed; {glue:text}`norm_ratio_range` over all runs) but do not follow the counts:
# the rank correlation between a class's norm and its training count is
# {glue:text}`norm_rho_seeds` per seed at IF {glue:text}`if_lo` ({glue:text}`norm_rho_range` over
# all runs), and on average the most frequent class's vector is {glue:text}`norm_ratio_lo` times
# as long as the rarest class's. Dividing by the norms therefore removes no head/tail bias, and
# tau barely matters: over the grid, validation balanced accuracy moves by
# {glue:text}`tau_spread_seeds` points per seed at IF {glue:text}`if_lo` (max - min; at most
# {glue:text}`tau_spread_max` in any run), and the taus chosen there ({glue:text}`tau_lo`) gain
# {glue:text}`tau_gain_lo` points over tau = 0 on validation ({glue:text}`tau_gain_side`).
#
# What tau-norm does change comes from dropping the bias. At IF {glue:text}`if_lo` the stage-1
# bias's mean over the head classes minus its mean over the tail classes is
# {glue:text}`bias_gap_lo` per seed ({glue:text}`bias_gap_side`; right panel below), and
# dropping the biases alone (tau = 0) changes validation balanced accuracy by {glue:text}`bias_drop_lo` points
# ({glue:text}`bias_drop_side`). On the test set tau-norm narrows the baseline's gap by
# {glue:text}`tau_narrowing_lo` points ({glue:text}`tau_narrowing_side`), with tail accuracy
# {glue:text}`tau_norm_tail_change` ({glue:text}`tau_norm_tail_side`) and head accuracy
# {glue:text}`tau_norm_head_change` ({glue:text}`tau_norm_head_side`), against cRT's
# {glue:text}`crt_tail_change` on the tail.

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(7.5, 3.4))
sns.lineplot(
    ch2.tau_curves(dec, dcfg.tau_grid),
    x="tau",
    y="change from tau = 0 (points)",
    hue="imbalance_factor",
    hue_order=ifs,
    palette=plotting.if_palette(ifs),
    errorbar=plotting.t_interval,
    ax=ax,
)
ax.axhline(0, color="black", lw=0.8)
ax.set(
    ylabel="val. balanced accuracy\nminus at tau = 0 (points)",
    title="tau-norm: validation accuracy against tau (mean, 95% CI over seeds)",
)
ax.legend(title="IF", loc="upper left", bbox_to_anchor=(1.01, 1))
plt.show()

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
for ax, col in zip(axes, ["weight norm", "bias"], strict=True):
    sns.lineplot(
        norms,
        x="class",
        y=col,
        hue="imbalance_factor",
        hue_order=ifs,
        palette=plotting.if_palette(ifs),
        marker="o",
        errorbar=plotting.t_interval,
        legend=ax is axes[-1],
        ax=ax,
    )
    ax.set(xlabel="class (0 = most training images)", title=f"stage-1 classifier: per-class {col}")
axes[-1].legend(title="IF", loc="upper left", bbox_to_anchor=(1.01, 1))
plt.show()

# %% [markdown]
# ### cRT and LWS: the epoch kept
#
# cRT kept epoch 1 of {glue:text}`dec_epochs` in {glue:text}`crt_epoch1`; at IF {glue:text}`if_lo`
# the epochs kept were {glue:text}`crt_kept_lo` for cRT and {glue:text}`lws_kept_lo` for LWS
# (seeds in order). The choice rule works as stated: in {glue:text}`crt_rule_ok` runs the epoch
# kept is the first epoch at the curve's maximum (a tie goes to the earlier epoch;
# {glue:text}`crt_epoch1_ties`). The early picks come from flat curves. Both methods fit one
# linear map (LWS: one scale per class) to fixed features with class-balanced batches of
# {glue:text}`dec_batch`, SGD with momentum and a learning rate of {glue:text}`dec_lr` that decays
# along a cosine from the first step, without warm-up; at IF {glue:text}`if_lo` an epoch is
# {glue:text}`steps_lo` such steps. Epoch 1's validation balanced accuracy minus the last epoch's
# is {glue:text}`crt_epoch1_minus_last` points (cRT, range over runs; LWS
# {glue:text}`lws_epoch1_minus_last`), and over the {glue:text}`dec_epochs` epochs it moves within
# {glue:text}`crt_curve_spread` points (max - min per run; LWS {glue:text}`lws_curve_spread`). The
# epoch kept beats the last one by {glue:text}`crt_kept_minus_last` points (LWS
# {glue:text}`lws_kept_minus_last`), {glue:text}`crt_kept_vs_noise` the ±{glue:text}`val_noise`
# points of sampling noise in one accuracy measured on the {glue:text}`n_val` validation images.
# Which epoch wins is mostly noise, and epoch 1 is as defensible a pick as any other:

# %% tags=["hide-input"]
table = epochs["crt"]
fig, axes = plt.subplots(1, len(ifs), figsize=(3.6 * len(ifs), 3.2), squeeze=False)
for ax, f in zip(axes[0], ifs, strict=True):
    for k, (cfg, r) in enumerate(sorted(((c, r) for c, r in dec.items() if c.imbalance_factor == f),
                                        key=lambda cr: cr[0].seed)):  # fmt: skip
        curve = 100 * np.asarray(r["methods"]["crt"]["val_curve"])
        e = r["methods"]["crt"]["choice"]["epoch"]
        colour = f"C{k}"
        ax.plot(range(1, len(curve) + 1), curve, color=colour, lw=1, label=f"seed {cfg.seed}")
        ax.plot([e], [curve[e - 1]], "o", color=colour, ms=6, mec="black")
    ax.set(title=f"IF = {f:g}", xlabel="epoch")
axes[0][0].set_ylabel("cRT val. balanced accuracy (%)")
axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
fig.suptitle("cRT's validation curve per seed; circle: the epoch kept", y=1.02)
plt.show()

# %% [markdown]
# The same per run (cRT; validation balanced accuracy in percent, differences in points):

# %% tags=["hide-input"]
tables.table(table.set_index(["imbalance_factor", "seed"]), precision=2)

# %% [markdown]
# ## Per-class accuracy at the strongest imbalance

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(9, 3))
sns.heatmap(
    ch2.per_class_means(s1, dec, f_lo),
    annot=True,
    fmt=".0f",
    cmap="viridis",
    vmin=0,
    vmax=100,
    cbar_kws={"label": "accuracy (%)"},
    ax=ax,
)
ax.set(
    xlabel="class (0 = most training images)",
    ylabel="",
    title=f"Per-class test accuracy at IF = {f_lo:g}, mean over seeds",
)
plt.show()

# %% [markdown]
# ## What this chapter showed
#
# Re-balancing only the classifier, with the features untouched: at IF {glue:text}`if_lo` cRT
# {glue:text}`crt_trade`, changing head accuracy by {glue:text}`crt_head_change` points
# ({glue:text}`crt_head_side`) and tail accuracy by {glue:text}`crt_tail_change`
# ({glue:text}`crt_tail_side`). cRT narrows the head/tail gap beyond noise at
# {glue:text}`crt_narrow_n` imbalance factors, and at IF = {glue:text}`if_lo` the gap that
# remains, {glue:text}`gap_lo_crt_ci` points, {glue:text}`crt_gap_closed` (the blog's:
# {glue:text}`blog_gap_dec`; {glue:text}`crt_gap_vs_blog`). tau-norm's tau moves validation
# accuracy by at most {glue:text}`tau_spread_max` points on these classifiers, whose weight norms
# have rank correlations of {glue:text}`norm_rho_range` with the class counts; the
# {glue:text}`tau_narrowing_lo` points by which tau-norm narrows the gap come with dropping the
# bias. The next chapter quantizes these models' weights and asks whether the tail, already the
# weaker side, also pays more for lower bit-widths.
