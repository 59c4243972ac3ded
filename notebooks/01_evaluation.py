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
# # Evaluation: does overall accuracy hide the tail?
#
# The blog's section 3.1 trains VGG16 with plain cross-entropy and instance-balanced sampling
# (every training image equally likely per epoch) on CIFAR-10-LT and reports, per imbalance
# factor, accuracy on all test images ("Norm"), on the head classes 0-3 and on the tail classes
# 4-9. Its claim: **overall accuracy hides the head/tail gap, and the gap grows with imbalance.**
#
# This chapter re-runs that baseline with several seeds, puts the blog's numbers beside ours, and
# adds the metrics a long-tail study usually reports: balanced accuracy, macro-F1, worst-class
# accuracy, Kang et al.'s many/medium/few groups, and the accuracy the model would have if the
# test data followed the training prior (the *deployment* accuracy).

# %% tags=["parameters"]
profile = "cpu"  # which stored results to show: smoke | cpu | paper
compute = False  # True: produce missing runs (the book build never does)
imbalance_factors = None  # None: the profile's imbalance factors, e.g. [0.1, 0.02, 0.01]
seeds = None  # None: the profile's seeds, e.g. [0, 1, 2]

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import seaborn as sns

from ltmpq import ChapterParams, blog, claims, frames, load, plotting, tables
from ltmpq.analysis import ch1_evaluation as ch1

params = ChapterParams(profile, compute, imbalance_factors, seeds)
plotting.setup()
s1 = load.stage1_results(params)
frame = frames.metrics_frame(s1)
summary = frames.summarize(frame)
cmp = ch1.table1_vs_blog(summary, methods=("baseline",))
tables.glue_all(
    {
        "data_note": load.data_note(s1),
        **ch1.recipe_facts(next(iter(s1)), len(params.seed_list)),
        **ch1.vs_blog_facts(cmp),
        **ch1.gap_facts(frame, summary),
        **claims.part_facts(claims.claim1(frame)),
        **ch1.deployment_facts(summary),
        **ch1.noise_facts(s1, summary),
    }
)

# %% [markdown]
# ## Setup
#
# VGG16 at width {glue:text}`profile_width` is trained from scratch for {glue:text}`epochs` epochs
# (SGD with Nesterov momentum {glue:text}`momentum`, batch {glue:text}`batch`, {glue:text}`schedule`;
# weight decay {glue:text}`wd` on weights only; random crop with 4-pixel padding and horizontal
# flips; {glue:text}`precision`) once per seed ({glue:text}`n_seeds` seeds per imbalance factor).
# All numbers are percent on the balanced test set, computed on {glue:text}`data_note`; "±" is
# the half-width of a 95% Student-t interval over seeds.

# %% [markdown]
# ## Overall, head and tail (the blog's Fig. 5)

# %% tags=["hide-input"]
test = frame[(frame["split"] == "test") & (frame["method"] == "baseline")].assign(who="ours")
parts = ["overall", "head", "tail"]
plotting.bar_panels(
    test,
    panel="imbalance_factor",
    x="metric",
    hue="who",
    order=parts,
    hue_order=["ours"],
    blog=blog.table1_bars(parts, ("baseline",), label=lambda m: "ours"),
    panel_width=3.4,
    suptitle="Baseline accuracy by class group: bars ours (mean, 95% CI), diamonds the blog",
)
plt.show()

# %% [markdown]
# The same numbers as a table, with the blog's value and our difference from it:

# %% tags=["hide-input"]
tables.table(ch1.fig5_table(cmp))

# %% [markdown]
# At IF = {glue:text}`if_hi` the head classes beat the tail classes by {glue:text}`gap_hi` ±
# {glue:text}`gap_ci_hi` points; at IF = {glue:text}`if_lo` by {glue:text}`gap_lo` ±
# {glue:text}`gap_ci_lo` points (the blog: {glue:text}`blog_gap_lo`), while the overall accuracy
# of {glue:text}`overall_lo`% gives no hint which classes fail. Across the imbalance factors the
# gap **{glue:text}`gap_grows`**: its per-seed increase has a 95% interval above zero at
# {glue:text}`gap_grow_steps` steps towards stronger imbalance. Head accuracy spans
# {glue:text}`head_range`% over the imbalance factors, tail accuracy {glue:text}`tail_range`%.
# By the study's verdict rule (chapter 4's table, where all four claims are judged), a gap at the
# mildest imbalance (part 1a) is **{glue:text}`part_1a`** and its growth to the strongest (part
# 1b) **{glue:text}`part_1b`** (estimate and 95% interval over seeds, in points).
#
# Our absolute accuracies are {glue:text}`vs_blog` the blog's (by {glue:text}`vs_blog_points`
# points on average over the table): a narrower VGG16, fewer epochs and (on the JPEG copy) lossy
# pixels all cost accuracy. The comparison that carries over is the *shape* — how much the
# head and the tail each move as the imbalance grows.
#
# ## Accuracy per class against its training count

# %% tags=["hide-input"]
pc = frames.per_class_frame(s1)
tables.glue_all(ch1.count_accuracy_fit(pc, min(pc["imbalance_factor"])))
fig, ax = plt.subplots(figsize=(7.5, 4))
sns.lineplot(
    pc,
    x="train_count",
    y="accuracy",
    hue="imbalance_factor",
    style="imbalance_factor",
    markers=True,
    dashes=False,
    errorbar=plotting.t_interval,
    palette="crest",
    ax=ax,
)
ax.set(
    xscale="log",
    ylim=(0, 100),
    xlabel="training images of the class (log scale)",
    ylabel="test accuracy of the class (%)",
    title="Each point is a class; whiskers: 95% CI over seeds",
)
ax.legend(title="IF")
plt.show()

# %% [markdown]
# At IF = {glue:text}`if_lo` the rank correlation between a class's training count and its test
# accuracy is {glue:text}`rho_lo` (Spearman), and a straight line in the logarithm of the count
# gains {glue:text}`slope_lo` points of accuracy per tenfold more training images ($R^2$ =
# {glue:text}`r2_lo`). That tail classes are under-predicted is the pattern that logit adjustment
# {cite:p}`menon2021logit` and classifier re-balancing {cite:p}`kang2020decoupling` exploit:
# part of the tail's loss sits in the classifier's bias towards frequent classes, not only in
# missing features. Chapter 2 tests that directly.
#
# ## What else should be reported
#
# One overall number averages over a balanced test set; a deployed model meets the *training*
# distribution instead. The table adds:
#
# - **balanced accuracy**, the mean of per-class recalls (equal to overall accuracy on this
#   balanced test set, up to rounding);
# - **macro-F1**, which also charges a class for the false positives it attracts;
# - **worst-class** accuracy, the class a user of the rarest category meets;
# - **many / medium / few**: Kang et al.'s groups (> 100, 20-100, < 20 training images);
# - **deployment**: per-class recall weighted by the long-tailed training prior — the accuracy
#   one would measure on test data distributed like the training data.

# %% tags=["hide-input"]
tables.table(ch1.metrics_table(summary))

# %% [markdown]
# At IF = {glue:text}`if_lo` the worst class reaches {glue:text}`worst_lo`% while the
# deployment-weighted accuracy is {glue:text}`deploy_lo`%, {glue:text}`deploy_minus_overall`
# points above the balanced overall accuracy: on data distributed like the training set, the
# classes the model fails on are rare and barely count. Which of the two matters is a property
# of the application, not of the model — the reason to report both.
#
# ## Test-set noise
#
# A single run's accuracy on this test set already carries sampling noise: at IF =
# {glue:text}`if_lo` about ±{glue:text}`noise_overall` points overall, ±{glue:text}`noise_tail`
# on the tail and ±{glue:text}`noise_class` on one class (half-widths of the 95% Wilson
# interval at our mean accuracies). Seeds add training noise on top; the range over seeds:

# %% tags=["hide-input"]
tables.table(ch1.seed_spread(frame))

# %% [markdown]
# ## What this chapter showed
#
# Overall accuracy on the balanced test set averages a head whose accuracy spans
# {glue:text}`head_range`% across the imbalance factors with a tail that spans
# {glue:text}`tail_range`%; worst-class and per-class accuracy show what the single number hides,
# and the deployment-weighted number shows why a long-tailed validation set would hide it too.
# The next chapter asks whether re-balancing only the classifier closes the gap.
