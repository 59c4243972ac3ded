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
# # Long-tailed data meets quantization
#
# **The question.** A 2025 blog post {cite:p}`blog2025rethinking` asks who pays when a classifier
# trained on long-tailed data (a few common classes, many rare ones) has its weights stored in
# fewer bits, and whether mixed-precision quantization wins the rare classes back. This book
# re-runs that study with several seeds and confidence intervals. Its first chapter asks: **on
# what data, and with which models, is the study run?**
#
# **The answer here.** On CIFAR-10-LT: long-tailed training sets of {glue:text}`train_sizes`,
# in which the most common class keeps {glue:text}`n_max` images and the rarest
# {glue:text}`rarest_counts` respectively. Every run also holds out a balanced validation split
# of {glue:text}`val_per_class` images per class, on which every choice is made, and is tested on
# the balanced CIFAR-10 test set of {glue:text}`n_test` images. The model is VGG16 at width
# {glue:text}`profile_width` (every layer keeps that fraction of the blog's channels:
# {glue:text}`model_params`), trained for {glue:text}`profile_epochs` epochs once per seed and
# imbalance factor: {glue:text}`n_models` models from {glue:text}`profile_seeds` seeds.
# {glue:text}`data_caveat`
#
# *Rerun this chapter* with your own parameters, e.g. `make chapter CHAPTER=00_introduction
# PARAMS="-p imbalance_factors '[0.1, 0.01]'"`; the cell below lists them.

# %% tags=["parameters", "hide-cell"]
profile = "cpu"  # model set: "cpu" (published), "cpu-v1" (the first), "smoke" (tiny, for tests), "paper"
compute = False  # True: produce missing runs (the book build never does)
imbalance_factors = None  # None: the model set's imbalance factors, e.g. [0.1, 0.02, 0.01]
seeds = None  # None: the model set's seeds, e.g. [0, 1, 2]

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import seaborn as sns

from ltmpq import ChapterParams, load, plotting, tables
from ltmpq.analysis import ch0_introduction as ch0

params = ChapterParams(profile, compute, imbalance_factors, seeds)
plotting.setup()
s1 = load.stage1_results(params)
cfg0 = next(iter(s1))
counts = ch0.train_counts(s1)
tables.glue_all({
    "data_is_lossy": load.data_note(s1), "data_caveat": ch0.data_caveat(load.data_sources(s1)),
    **ch0.data_facts(s1), **ch0.training_sizes(counts), **ch0.jpeg_facts(),
    **ch0.model_facts(profile, s1), **ch0.profile_facts(params, cfg0),
})  # fmt: skip

# %% [markdown]
# ## The book
#
# Models are trained on the data an application produces, and that data is rarely balanced.
# *Application-driven* machine learning {cite:p}`rolnick2024application` asks what our methods
# do on such data rather than on the curated benchmarks they were designed on. The blog asks this
# of **quantization**: when a classifier is trained on long-tailed data and its weights are then
# stored in fewer bits, who pays — the common (head) classes or the rare (tail) ones? And can
# **mixed-precision quantization** (MPQ), by choosing which layers keep more bits, win the rare
# classes back?
#
# One chapter answers one question:
#
# 1. **Evaluation** — on CIFAR-10-LT, does overall accuracy hide the head/tail gap?
# 2. **Decoupled training** — do cRT, tau-norm, LWS and NCM {cite:p}`kang2020decoupling`, or
#    post-hoc logit adjustment {cite:p}`menon2021logit`, close it?
# 3. **Quantization** — do lower weight bit-widths hurt tail classes more? Which quantizer
#    choices decide it?
# 4. **Mitigation** — does a tail-aware sensitivity metric in MPQ move accuracy back to the
#    tail at the same bit budget? And, closing the study: which of the blog's claims hold?
# 5. **The 6-bit question** — what quantizer would lose the blog's tail points at 6 bits? Does
#    our simulated quantization match a real integer runtime? Does curvature explain which
#    classes lose?
# 6. **Beyond VGG16 and cRT** — do the claims hold on ResNet-32 {cite:p}`he2016deep`, the
#    long-tail literature's backbone, and with logit adjustment?
# 7. **Winning the tail back** — can stronger post-training quantization, the calibration
#    set, or re-balancing after quantization recover what the tail loses?
# 8. **Conclusion** — what the blog got right, what to do in practice, and what stays open.
#
# Unlike the blog, every number here is a mean over several seeds (each seed draws its own
# long-tailed subset and initialises its own network) with a 95% confidence interval, every
# choice (tau, epochs, the MPQ sensitivity) is made on a held-out validation split and
# never on the test set, and every table that mirrors the blog shows the blog's value beside ours.
#
# This chapter describes the data and the models. It only reads stored results; nothing is
# trained here.

# %% [markdown]
# ## The data
#
# CIFAR-10 has 50,000 training and 10,000 test images of 32x32 pixels in ten classes, 5,000 and
# 1,000 per class. A *long-tailed* version (CIFAR-10-LT, {cite:t}`cao2019ldam`) keeps all images
# of class 0 and exponentially fewer of each following class: class $i$ keeps
#
# $$ n_i = \left\lfloor n_{\max} \cdot \mathrm{IF}^{\,i/(C-1)} \right\rfloor, \qquad
#    \mathrm{IF} = n_{C-1} / n_0 \in (0, 1], $$
#
# so the *imbalance factor* IF is the ratio of the rarest to the most common class (the blog
# writes IF = 0.1, 0.02 and 0.01; the long-tail literature often quotes the inverse, 10, 50
# and 100). The test set stays balanced.
#
# **Where our pixels come from.** The numbers in this book were computed on:

# %% tags=["hide-input"]
print(load.data_source_lines(s1))

# %% [markdown]
# Data used: **{glue:text}`data_is_lossy`**. Where that is the JPEG copy, its README reports that
# its pixels differ from the originals by about {glue:text}`jpeg_mae` grey levels on average
# ({glue:text}`jpeg_psnr` dB PSNR) and that models trained on such copies lose roughly
# {glue:text}`jpeg_cost` points of accuracy, so none of our absolute numbers is then directly
# comparable with published CIFAR-10 results — including the blog's. Differences *between*
# classes, methods and bit-widths, all measured on the same pixels, are what this study compares.
#
# ## Three splits, never mixed
#
# Before any long-tailed subset is drawn, a **balanced validation split** of
# {glue:text}`val_per_class` images per class is held out of the CIFAR-10 training images (drawn
# once, by a fixed seed, identical for every run). Every choice the study makes is made on it.
# The long-tailed **training** subset is then drawn from the images that remain, by the run's
# seed, with $n_{\max}$ = {glue:text}`n_max` (the blog's 5,000 minus the hold-out). The
# **test** set is the untouched, balanced CIFAR-10 test set. The three sets are disjoint (the
# test suite checks it).

# %% tags=["hide-input"]
tables.download(ch0.counts_tidy(counts), "00_introduction_class_counts")
tables.table(ch0.counts_beside_blog(counts), precision=0)

# %% [markdown]
# Training images per class, ours beside the blog's (which draws from all 5,000 images per class);
# the validation split holds {glue:text}`n_val` images and the test set {glue:text}`n_test`.
# Download: {download}`the training images per class and imbalance factor, ours and the blog's
# (CSV) <data/00_introduction_class_counts.csv>`.

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(9, 3.8))
long = counts.reset_index().melt(id_vars="IF", var_name="class", value_name="images")
ifs = sorted(counts.index, reverse=True)  # the legend reads from the mildest imbalance to the strongest
sns.barplot(long, x="class", y="images", hue="IF", hue_order=ifs, palette=plotting.if_palette(ifs), ax=ax)
top = counts.to_numpy().max()
ax.set(yscale="log", ylabel="training images (log scale)", ylim=(None, top * 4))  # room for the labels
ax.axvline(3.5, color="grey", ls="--", lw=1)
ax.text(1.5, top * 1.6, "head (0-3)", ha="center")
ax.text(6.5, top * 1.6, "tail (4-9)", ha="center")
ax.tick_params(axis="x", rotation=30)
ax.set_title("Per-class training counts of CIFAR-10-LT (the blog's Fig. 4)")
plt.show()

# %% [markdown]
# At IF = {glue:text}`most_lt_if` the rarest class keeps {glue:text}`tail_min` images and the four
# head classes hold {glue:text}`head_share`% of the training set. (The blog's text says "about
# 80%"; its own counts give {glue:text}`blog_head_share`%.)
#
# ## Head, tail, many, medium, few
#
# We report two groupings of the classes:
#
# - the **blog's head/tail**: classes 0-3 are *head*, classes 4-9 *tail* (its Table 1 satisfies
#   overall = 0.4 · head + 0.6 · tail exactly on a balanced test set);
# - **Kang et al.'s many/medium/few** shots: classes with more than 100, 20-100 and fewer than
#   20 training images. At IF = {glue:text}`most_lt_if` the rarest class still has
#   {glue:text}`tail_min` images, so the *few* group {glue:text}`few_group`.
#
# ## The model and the model sets
#
# The blog trains VGG16 {cite:p}`simonyan2015vgg` for CIFAR: 13 convolutions with BatchNorm and
# 3 fully connected layers, 16 weight layers named L1-L16. We keep the architecture and the
# names and add a *width multiplier*: at width $w$ every layer keeps the fraction $w$ of its
# channels (the blog's network is width 1).
#
# The runs are organised in **model sets**, which the code and its commands call *profiles*. A
# model set is a named set of runs: which imbalance factors, which seeds, and the model and
# training recipe every run uses. Each chapter's `profile` parameter chooses the model set whose
# stored results it shows; these exist:

# %% tags=["hide-input"]
tables.table(ch0.profiles_table(), scroll=True)

# %% [markdown]
# This page shows **{glue:text}`model_set`** (named {glue:text}`profile_name` in commands): VGG16
# at width {glue:text}`profile_width` trained for {glue:text}`profile_epochs` epochs, with
# {glue:text}`profile_seeds` seeds per imbalance factor. {doc}`The appendix <90_v2_model_set>`
# shows how the published model set's recipe was chosen on the validation split and what changed
# from the first published model set, which stays in the repository for that comparison and for
# chapter 4's verdicts. The tiny set lets the tests run every chapter in minutes. The blog's
# model size needs a GPU to train; a narrower, shorter-trained network is less accurate in
# absolute terms, which is why each chapter compares *gaps* and *changes* with the blog's rather
# than raw accuracies.
#
# ## What this chapter showed
#
# CIFAR-10-LT keeps the test set balanced while the training set shrinks exponentially from
# class 0 to class 9, and a validation split held out before the long tail is drawn keeps every
# choice away from the test set. The next chapter asks what a model trained on it learns about the rare
# classes, and whether the usual single accuracy number shows it.
