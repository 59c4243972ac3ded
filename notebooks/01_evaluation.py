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
# **The question.** The blog's section 3.1 trains VGG16 on CIFAR-10-LT, a long-tailed copy of
# CIFAR-10 whose classes keep exponentially fewer training images from class 0 to class 9. The
# *imbalance factor* (IF) is the rarest class's count divided by the most frequent class's: IF 0.01
# is the strongest imbalance studied, IF 0.1 the mildest. Training uses plain cross-entropy and
# instance-balanced sampling (every training image equally likely in each epoch). The blog reports
# accuracy on all test images ("Norm"), on the *head* classes 0-3 (the four with the most training
# images) and on the *tail* classes 4-9 (its Fig. 5), and claims: **overall accuracy hides the
# head/tail gap, and the gap grows with imbalance.**
#
# **The answer here.** Over {glue:text}`n_seeds` trained models per imbalance factor (mean and
# two-sided 95% interval over seeds), at IF {glue:text}`if_lo` the overall accuracy of
# {glue:text}`overall_lo_ci`% averages head classes at {glue:text}`head_lo_ci`% and tail classes
# at {glue:text}`tail_lo_ci`%. By the study's verdict rule, "a head–tail gap exists at the
# mildest imbalance" (head minus tail accuracy at IF {glue:text}`if_hi`, in points) is
# **{glue:text}`part_1a`**, and "the gap grows with imbalance" (its increase from IF
# {glue:text}`if_hi` to IF {glue:text}`if_lo`) is **{glue:text}`part_1b`**. Beside the blog's
# numbers, the gap is {glue:text}`gap_hi_ci` points at IF {glue:text}`if_hi` against the blog's
# {glue:text}`blog_gap_hi` ({glue:text}`gap_hi_vs_blog`) and {glue:text}`gap_lo_ci` at IF
# {glue:text}`if_lo` against its {glue:text}`blog_gap_lo` ({glue:text}`gap_lo_vs_blog`); the
# section "Beside the blog" says what carries over and what does not.
#
# The chapter re-runs the blog's baseline with several seeds, puts the blog's numbers beside ours,
# and adds the metrics a long-tail study usually reports: balanced accuracy, macro-F1,
# worst-class accuracy, and the accuracy the model would have if the test data followed the
# training distribution (the *deployment* accuracy).
#
# *Rerun this chapter* with your own parameters, e.g. `make chapter CHAPTER=01_evaluation
# PARAMS="-p seeds '[0, 1]'"`; the cell below lists them.

# %% tags=["parameters", "hide-cell"]
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
first = next(iter(s1))
tables.glue_all(
    {
        "data_note": load.data_note(s1),
        **ch1.recipe_facts(first, len(params.seed_list)),
        **ch1.precision_note(first),
        **ch1.gap_facts(frame, summary),
        **ch1.blog_shape_facts(frame),
        **ch1.carry_over_facts(frame),
        **ch1.vs_blog_cells(summary),
        **ch1.headline_facts(frame),
        **claims.part_facts(claims.claim1(frame)),
        **ch1.deployment_facts(summary),
        **ch1.deployment_gain_facts(frame),
        **ch1.noise_facts(s1, summary),
        **ch1.kang_group_facts(s1),
    }
)

# %% [markdown]
# ## Setup
#
# VGG16 with every layer's channel count scaled by {glue:text}`profile_width` is trained from
# scratch for {glue:text}`epochs` epochs (SGD with Nesterov momentum {glue:text}`momentum`, batch
# {glue:text}`batch`, {glue:text}`schedule`; weight decay {glue:text}`wd` on weights only; random
# crop with 4-pixel padding and horizontal flips) once per seed ({glue:text}`n_seeds` seeds per
# imbalance factor; a seed fixes the long-tailed draw of training images, the initial weights and
# the order of the batches). Arithmetic: {glue:text}`precision` ({glue:text}`precision_note`).
# All numbers are percent on the balanced test set (the same number of images in every class),
# computed on {glue:text}`data_note`. "±" is the half-width of a two-sided 95% Student-t interval
# over seeds, and "a [b, c]" is a mean with that interval.

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
# At IF = {glue:text}`if_hi` head minus tail accuracy is {glue:text}`gap_hi` ±
# {glue:text}`gap_ci_hi` points ({glue:text}`gap_hi_side`); at IF = {glue:text}`if_lo` it is
# {glue:text}`gap_lo` ± {glue:text}`gap_ci_lo` points ({glue:text}`gap_lo_side`), while the
# overall accuracy of {glue:text}`overall_lo`% gives no hint which classes fail. Across the
# imbalance factors the gap **{glue:text}`gap_grows`**: its per-seed increase has a two-sided 95%
# interval above zero at {glue:text}`gap_grow_steps` steps towards stronger imbalance. Head
# accuracy spans {glue:text}`head_range`% over the imbalance factors, tail accuracy
# {glue:text}`tail_range`%. Chapter 4's table judges this claim with the other three.
#
# ### Beside the blog: what carries over and what does not
#
# Our runs share with the blog's {glue:text}`carries_over`; they differ in
# {glue:text}`does_not_carry_over` (a sign carries over where our two-sided 95% interval lies
# on the blog's side of zero; a size differs where our interval excludes the blog's value, which
# comes from one run without an interval). From IF {glue:text}`if_hi` to IF {glue:text}`if_lo`
# our head accuracy changes by {glue:text}`head_change` points ({glue:text}`head_change_side`;
# the blog: {glue:text}`blog_head_change`) and our tail accuracy by {glue:text}`tail_change`
# points ({glue:text}`tail_change_side`; the blog: {glue:text}`blog_tail_change`). Head minus
# tail accuracy, ours against the blog's at each imbalance factor:

# %% tags=["hide-input"]
tables.table(ch1.blog_gaps_table(frame))

# %% [markdown]
# At IF {glue:text}`if_hi` our tail reaches {glue:text}`tail_hi_ci`% against the blog's
# {glue:text}`blog_tail_hi` ({glue:text}`tail_hi_vs_blog`) and our head {glue:text}`head_hi_ci`%
# against {glue:text}`blog_head_hi` ({glue:text}`head_hi_vs_blog`); at IF {glue:text}`if_lo` the
# tail reaches {glue:text}`tail_lo_ci`% against {glue:text}`blog_tail_lo`
# ({glue:text}`tail_lo_vs_blog`) and the head {glue:text}`head_lo_ci`% against
# {glue:text}`blog_head_lo` ({glue:text}`head_lo_vs_blog`). So our gap grows by
# {glue:text}`growth_ci` points between the two, the blog's by {glue:text}`blog_growth`
# ({glue:text}`growth_vs_blog`). Over the {glue:text}`vs_blog_n` accuracies of the Fig. 5 table
# (overall, head and tail at each imbalance factor), our interval lies below the blog's value in
# {glue:text}`vs_blog_below`, contains it in {glue:text}`vs_blog_within` and lies above it in
# {glue:text}`vs_blog_above`. The differences we
# know of: a narrower VGG16, fewer epochs, lossy pixels on the JPEG copy, and the blog's single
# run per setting, whose numbers carry a single run's test-set noise (last section).
#
# ## Accuracy per class against its training count

# %% tags=["hide-input"]
pc = frames.per_class_frame(s1)
tables.glue_all(ch1.count_accuracy_fit(pc, min(pc["imbalance_factor"])))
ifs = sorted(pc["imbalance_factor"].unique(), reverse=True)  # mildest first
fig, ax = plt.subplots(figsize=(7.5, 4))
sns.lineplot(
    pc,
    x="train_count",
    y="accuracy",
    hue="imbalance_factor",
    hue_order=ifs,
    style="imbalance_factor",
    style_order=ifs,
    markers=True,
    dashes=False,
    errorbar=plotting.t_interval,
    err_style="band",
    palette=plotting.if_palette(ifs),
    ax=ax,
)
ax.set(
    xscale="log",
    ylim=(0, 100),
    xlabel="training images of the class (log scale)",
    ylabel="test accuracy of the class (%)",
    title="One marker per class (mean over seeds); shaded band: 95% CI over seeds",
)
ax.legend(title="IF", loc="lower right")
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
# - **macro-F1**, the mean over classes of the harmonic mean of precision and recall, which also
#   charges a class for the false positives it attracts;
# - **worst-class** accuracy, the class a user of the rarest category meets;
# - **deployment**: per-class recall weighted by the long-tailed training prior — the accuracy
#   one would measure on test data distributed like the training data.
#
# Kang et al.'s grouping by training count (many, medium and few images per class) is left out:
# with ten classes, at IF {glue:text}`if_lo` its three groups hold {glue:text}`kang_sizes`
# classes. The head/tail split above is the blog's. Every metric of every run, per seed:
# {download}`chapter 1's metrics per seed (CSV) <data/01_evaluation_metrics.csv>`.

# %% tags=["hide-input"]
tables.download(ch1.tidy_metrics(frame), "01_evaluation_metrics")
tables.table(ch1.metrics_table(summary))

# %% [markdown]
# At IF = {glue:text}`if_lo` the worst class reaches {glue:text}`worst_lo`% while the
# deployment-weighted accuracy is {glue:text}`deploy_lo`%; deployment minus balanced overall
# accuracy is {glue:text}`deploy_vs_overall` points per seed ({glue:text}`deploy_side`). On data
# distributed like the training set, the classes the model fails on are rare and barely count.
# Which of the two matters is a property of the application, not of the model — the reason to
# report both.
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
# The claim's two parts are **{glue:text}`part_1a`** (a gap at the mildest imbalance) and
# **{glue:text}`part_1b`** (its growth). Beside the blog, our runs share
# {glue:text}`carries_over`, and differ in {glue:text}`does_not_carry_over`. The next chapter
# asks whether re-balancing only the classifier closes the gap.
