"""Make a run of the study (:class:`ltmpq.plan.Run`): stage-1 training (chapter 1), decoupled
classifiers (chapter 2), their post-training quantization (chapters 3 and 5), mixed precision
(chapter 4) and chapter 5's integer-runtime and curvature measurements.

:func:`make` makes a run of any kind; each stage function returns the stored result when
``results/`` has one that is ok (:func:`ltmpq.results.fetch`), otherwise computes it (only with
``compute=True``) and stores it with its provenance. A stored result that is not ok (damaged,
outdated, made from other weights) is replaced only when asked (``remake``), and committed weights
only by ``retrain``. One process at a time makes a result (a file lock), so two ``make runs`` of the
same profile share the work. The heavy artifacts (checkpoints, features, classifiers) come from
:mod:`ltmpq.artifacts`.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import asdict

import numpy as np
import torch
from filelock import FileLock
from tqdm import tqdm

from . import artifacts, plan, provenance, ptq, results, weights
from . import mpq as mp
from .config import (
    HESSIAN_METRICS,
    DecoupleConfig,
    DecoupledRun,
    ExplainConfig,
    ExplainRun,
    MPQConfig,
    MPQRun,
    QuantConfig,
    QuantizedRun,
    SensitivityRun,
    Stage1Config,
    config_hash,
    get_profile,
)
from .data import blog_head_tail, class_groups
from .decoupling import fit_all
from .io import write_json
from .metrics import evaluate
from .paths import cache_dir
from .quantization import (
    activation_bits,
    calibration_indices,
    logit_bits,
    model_size,
    needs_calibration,
    quantize_head,
    quantize_logits,
    quantize_model,
    sweep_map,
)
from .results import encode_predictions
from .sensitivity import sensitivity_tables
from .training import predict, to_input
from .vocab import FLOAT, check_bits


def _split_eval(logits: torch.Tensor, labels: torch.Tensor, counts) -> dict:
    pred = logits.argmax(1).numpy()
    return {**evaluate(labels.numpy(), pred, counts), "predictions": pred.tolist()}


@contextlib.contextmanager
def _exclusive(run: plan.Run):
    """Hold the lock of one result while it is made: a second process making it waits, then finds it."""
    path = cache_dir() / "locks" / f"{run.kind}-{config_hash(run.config)}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path):
        yield


def _found(run: plan.Run, profile: str, compute: bool, remake: bool) -> dict | None:
    """The stored result of ``run``; None when it is to be made (``compute``: missing; ``remake``:
    stored but damaged, outdated or stale); otherwise the error that names the fix. A result computed
    on another copy of CIFAR-10 than this machine's is never used nor replaced by a computing run."""
    try:
        found = results.fetch(run, profile)
    except results.ResultError:
        if compute and remake:
            return None
        raise
    except results.MissingResultError:
        if compute:
            return None
        raise
    if compute and (here := artifacts.data_digest()) is not None:
        if results.run_state(run, profile, here).startswith("other data"):
            raise results.ResultError(results.fix(run, profile, results.run_state(run, profile, here)))
    return found


def _get(run: plan.Run, profile: str, make, *, compute: bool, remake: bool, fresh: bool = False) -> dict:
    """The stored result of ``run``, or ``make()``'s (under the run's lock) where it is to be made;
    ``fresh``: make it even when stored (``--retrain``)."""
    if not fresh and (found := _found(run, profile, compute, remake)) is not None:
        return found
    with _exclusive(run):
        if not fresh and (found := _found(run, profile, compute, remake)) is not None:
            return found  # another process made it while this one waited
        return make()


def _quantizer_run(cfg, dcfg, qcfg, bits, keep: bool, profile: str) -> plan.Run:
    """A sweep as a run, named by the profile's variant of that quantizer (for its messages)."""
    config = QuantizedRun(cfg, dcfg, qcfg, bits, keep)
    prof = get_profile(profile)
    for stage in ("quantized", "hypotheses", "ladder"):
        names = plan.variant_names(stage, profile)
        for name, q in prof.quant_configs(names).items():
            if q == qcfg:
                return plan.Run(config, stage, name)
    return plan.Run(config, "quantized")


def make(run: plan.Run, profile: str, *, compute: bool = False, progress: bool = True,
         retrain: bool = False, remake: bool = False) -> dict:  # fmt: skip
    """The result of any run: stored, or made (``compute``). ``retrain``: train a stage-1 model again
    although its weights are published; ``remake``: replace a stored result that is not ok."""
    c, kw = run.config, {"compute": compute, "progress": progress, "remake": remake or retrain}
    if run.kind == "stage1":
        return stage1(c, profile, retrain=retrain, **kw)
    if run.kind == "decoupled":
        return decoupled(c.stage1, c.decouple, profile, **kw)
    if run.kind == "quantized":
        return quantized(
            c.stage1, c.decouple, c.quant, c.bits, profile, keep_predictions=c.keep_predictions, **kw
        )
    if run.kind == "mpq":
        return mixed_precision(c.stage1, c.decouple, c.quant, c.mpq, profile, **kw)
    return explain(c.stage1, c.decouple, c.quant, c.explain, profile, **kw)


def stage1(cfg: Stage1Config, profile: str, *, compute: bool = False, progress: bool = True,
           retrain: bool = False, remake: bool = False) -> dict:  # fmt: skip
    """The baseline (stage-1, instance-balanced cross-entropy) result of one run, and its published
    weights (``results/<profile>/models/``). ``retrain``: train it again from scratch even when
    its result and weights are stored (the results computed from the old weights then go stale);
    ``remake``: train it again where its stored result is damaged or outdated."""
    run = plan.Run(cfg, "stage1")
    return _get(run, profile, lambda: _train(run, profile, progress, retrain or remake),
                compute=compute or retrain, remake=remake, fresh=retrain)  # fmt: skip


def _train(run: plan.Run, profile: str, progress: bool, replace: bool) -> dict:
    """Train a stage-1 model, publish its weights and store its result. Published weights are
    overwritten only when asked (``replace``): their result may be missing, but they are not."""
    cfg, path = run.config, run.path(profile)
    name = weights.stage1_name(cfg)
    if not replace and weights.path_for(profile, name).is_file():
        target = weights.path_for(profile, name)
        raise weights.WeightsError(
            f"{target} is published but its result {path.name} is not: restore the result "
            f"(git checkout -- {path}) or train the model again with {run.command(profile, '--retrain')}"
        )
    retrain = replace
    t0 = time.perf_counter()
    if retrain:  # from scratch: no finished checkpoint, no features of the old model
        for name in ("checkpoint.pt", "features.pt"):
            (artifacts.run_dir(cfg) / name).unlink(missing_ok=True)
    data = artifacts.dataset()
    splits = artifacts.splits_for(cfg, data)
    outcome = artifacts.trained_model(cfg, data, progress=progress)
    sha = weights.save(
        weights.path_for(profile, name), outcome.model.state_dict(), artifacts.weights_metadata(cfg)
    )
    feats = artifacts.features(cfg, data, progress=progress, model=(outcome.model, sha))
    counts = list(splits.train_counts)
    payload = run.payload(profile) | dict(
        train_counts=counts,
        groups={k: list(v) for k, v in class_groups(counts).items()},
        split_sizes={"train": len(splits.train), "val": len(splits.val), "test": len(splits.test)},
        history=outcome.history,
        train_seconds=outcome.train_seconds,
        train_images_per_second=outcome.images_per_second,
        weights=f"models/{name}",
        weights_sha256=sha,
        val=_split_eval(feats["val_logits"], feats["val_labels"], counts),
        test=_split_eval(feats["test_logits"], feats["test_labels"], counts),
        test_labels=feats["test_labels"].tolist(),
    )
    return results.save(path, cfg, payload, provenance.record(cfg, data.source, time.perf_counter() - t0))


def decoupled(cfg: Stage1Config, dcfg: DecoupleConfig, profile: str, *, compute: bool = False,
              progress: bool = True, remake: bool = False) -> dict:  # fmt: skip
    """cRT, tau-norm, LWS and NCM on the frozen backbone of one stage-1 run, and their published
    weights (``results/<profile>/models/*.classifiers.safetensors``)."""
    r = plan.Run(DecoupledRun(cfg, dcfg), "decoupled")
    return _get(r, profile, lambda: _decouple(r, profile, progress, remake), compute=compute, remake=remake)


def _decouple(r: plan.Run, profile: str, progress: bool, remake: bool) -> dict:
    run, cfg, dcfg, path = r.config, r.stage1, r.config.decouple, r.path(profile)
    t0 = time.perf_counter()
    base_result = stage1(cfg, profile, compute=True, progress=progress, remake=remake)
    feats = artifacts.features(cfg, progress=progress)
    base = artifacts.baseline_classifier(feats)
    fitted = artifacts.fit_classifiers(cfg, dcfg, feats)  # and caches them
    name = weights.classifiers_name(run)
    states = weights.join_classifiers({m: f.classifier.state_dict() for m, f in fitted.items()})
    csha = weights.save(weights.path_for(profile, name), states,
                        artifacts.classifiers_metadata(run, feats["weights_sha256"]))  # fmt: skip
    counts = base_result["train_counts"]
    methods = {}
    for m in dcfg.methods:
        if m == "baseline":
            continue
        fit = fitted[m]
        with torch.no_grad():
            methods[m] = {
                "choice": fit.choice,
                "val_curve": fit.val_curve,
                "val": _split_eval(fit.classifier(feats["val_features"]), feats["val_labels"], counts),
                "test": _split_eval(fit.classifier(feats["test_features"]), feats["test_labels"], counts),
            }
    payload = r.payload(profile) | {"methods": methods,
               "weights_sha256": feats["weights_sha256"], "classifiers": f"models/{name}",
               "classifiers_sha256": csha,
               # what tau-norm and LWS act on: the stage-1 classifier's per-class weight norms and biases
               "stage1_classifier": {"weight_norm": base.weight.norm(dim=1).tolist(),
                                     "bias": base.bias.tolist()}}  # fmt: skip
    source = base_result["provenance"]["data_source"]
    return results.save(path, run, payload, provenance.record(run, source, time.perf_counter() - t0))


def quantized(
    cfg: Stage1Config,
    dcfg: DecoupleConfig,
    qcfg: QuantConfig,
    bits,
    profile: str,
    *,
    keep_predictions: bool = True,
    compute: bool = False,
    progress: bool = True,
    remake: bool = False,
) -> dict:
    """Every classifier of one run at float and at each uniform weight bit-width in ``bits``.

    The quantized backbone's features are computed once per bit-width and shared by the five
    classifiers (they differ only in L16, quantized at the same bits). Each bit-width's map is
    :func:`~ltmpq.quantization.sweep_map` (L1 and L16 at ``qcfg.first_last_bits`` when set), its
    activations follow it with ``act_bits="match"``, and with ``qcfg.logit_bits`` every method's
    logits are quantized, calibrated on the calibration images' logits through that method.
    """
    if isinstance(bits, str) or not bits:
        raise ValueError(
            f"bits must be a non-empty list of weight bit-widths such as (8, 6, 4), got {bits!r}"
        )
    bits = tuple(
        check_bits(b, "a swept bit-width", allow_float=True) for b in bits
    )  # 4.5 or "6" are errors, not 4 and 6
    if FLOAT in bits:
        raise ValueError(f"bits lists the quantized bit-widths; float is always the reference, got {bits!r}")
    r = _quantizer_run(cfg, dcfg, qcfg, bits, keep_predictions, profile)
    return _get(r, profile, lambda: _sweep(r, profile, progress, remake), compute=compute, remake=remake)


def _sweep(r: plan.Run, profile: str, progress: bool, remake: bool) -> dict:
    run, path = r.config, r.path(profile)
    cfg, dcfg, qcfg, bits, keep_predictions = (
        run.stage1,
        run.decouple,
        run.quant,
        run.bits,
        run.keep_predictions,
    )
    t0 = time.perf_counter()
    dec = decoupled(cfg, dcfg, profile, compute=True, progress=progress, remake=remake)  # and stage 1 first
    counts = stage1(cfg, profile)["train_counts"]
    data = artifacts.dataset()
    splits = artifacts.splits_for(cfg, data)
    model, sha = artifacts.stage1_weights(cfg, data, progress=progress)
    feats = artifacts.features(cfg, data, progress=progress, model=(model, sha))
    heads = artifacts.classifiers(cfg, dcfg, progress=progress)
    calib, calib_raw, calib_counts = None, None, None
    if needs_calibration(qcfg):  # activation or logit ranges
        calib_raw, calib_counts = _calibration(cfg, qcfg, data, splits, counts)
        calib = to_input(calib_raw)
    if qcfg.rebalance_after and dcfg.augment_views:
        raise ValueError("re-balancing after quantization refits stage 2 on un-augmented features; "
                         f"this stage 2 has augment_views={dcfg.augment_views}")  # fmt: skip
    inputs = {"val": data.train_x[splits.val], "test": data.test_x[splits.test]}
    if qcfg.rebalance_after:
        inputs = {"train": data.train_x[splits.train]} | inputs
    entries = {}
    for b in tqdm((FLOAT, *bits), desc=f"{run.tag} bits", disable=not progress, leave=False):
        t1 = time.perf_counter()
        bmap = sweep_map(b, qcfg, list(model.layers))
        qmodel = (ptq.quantize_model if qcfg.brevitas else quantize_model)(model, bmap, qcfg, calib)
        size = model_size(model, bmap, qcfg.granularity, qcfg.weight_scheme)
        entry: dict = {"bit_map": bmap, "size": size, "methods": {}}
        last = bmap[list(model.layers)[-1]]  # the classifier's bits
        qheads = {m: head if last == FLOAT else quantize_head(head, last, qcfg) for m, head in heads.items()}
        fs = {}
        for split, xs in inputs.items():
            if b == FLOAT and not activation_bits(qcfg, bmap):
                fs[split] = feats[f"{split}_features"]  # the float model itself: chapter 2's features
            else:
                fs[split], _ = predict(qmodel, torch.from_numpy(xs))
        if qcfg.rebalance_after:  # stage 2 refitted on the quantized features, then at the same bits
            qheads |= _rebalanced(heads, qheads, fs, feats, dcfg, last, qcfg)
        lbits = logit_bits(qcfg, bmap)
        if lbits is not None:  # each method's logit range, from its logits of the calibration images
            calib_feats, _ = predict(qmodel, calib_raw)
            qheads = {m: quantize_logits(h, calib_feats, lbits, qcfg) for m, h in qheads.items()}
        for split in ("val", "test"):
            f = fs[split]
            labels = feats[f"{split}_labels"]
            for method, qhead in qheads.items():
                with torch.no_grad():
                    pred = qhead(f).argmax(1).numpy()
                ev = evaluate(labels.numpy(), pred, counts)
                ev.pop("confusion")  # chapters 1-2 keep it; here it would triple the file
                if split == "test" and keep_predictions:
                    ev["predictions"] = encode_predictions(pred)
                entry["methods"].setdefault(method, {})[split] = ev
        entry["seconds"] = round(time.perf_counter() - t1, 2)
        entries[str(b)] = entry
    payload = r.payload(profile) | {"quant": asdict(qcfg),
               "weights_sha256": feats["weights_sha256"], "classifiers_sha256": dec.get("classifiers_sha256"),
               "train_counts": counts, "calibration_counts": calib_counts, "entries": entries}  # fmt: skip
    source = dec["provenance"]["data_source"]
    return results.save(path, run, payload, provenance.record(run, source, time.perf_counter() - t0))


#: What a stage-2 method refitted after quantization is called in a sweep (``crt`` -> ``crt_after``).
AFTER = "_after"


def _rebalanced(heads: dict, qheads: dict, fs: dict, feats: dict, dcfg: DecoupleConfig, last, qcfg) -> dict:
    """Re-balancing after quantization: every stage-2 method refitted (choices on the validation
    split, as in chapter 2) on the quantized backbone's features ``fs``, from the quantized
    baseline classifier, then its head quantized at the classifier's bits ``last``. At float it is
    chapter 2's stage 2 itself."""
    if last == FLOAT and all(fs[s] is feats[f"{s}_features"] for s in fs):
        return {f"{m}{AFTER}": h for m, h in heads.items() if m != "baseline"}
    fitted = fit_all(
        qheads["baseline"], fs["train"], feats["train_labels"], fs["val"], feats["val_labels"], dcfg
    )
    return {f"{m}{AFTER}": f.classifier if last == FLOAT else quantize_head(f.classifier, last, qcfg)
            for m, f in fitted.items() if m != "baseline"}  # fmt: skip


def _calibration(
    cfg: Stage1Config, qcfg: QuantConfig, data, splits, counts
) -> tuple[torch.Tensor, list[int]]:
    """The calibration images (raw, uint8) of a run's quantizer, drawn from its long-tailed
    training split as ``qcfg.calibration`` says, and their class counts."""
    idx = calibration_indices(
        data.train_y[splits.train], qcfg.calibration, qcfg.calibration_size,
        seed=int(np.random.SeedSequence([qcfg.calibration_seed, cfg.seed]).generate_state(1)[0]),
        tail_classes=blog_head_tail(len(counts))["tail"],
    )  # fmt: skip
    raw = torch.from_numpy(data.train_x[splits.train][idx])
    return raw, np.bincount(data.train_y[splits.train][idx], minlength=len(counts)).tolist()


def explain(
    cfg: Stage1Config,
    dcfg: DecoupleConfig,
    qcfg: QuantConfig,
    ecfg: ExplainConfig,
    profile: str,
    *,
    compute: bool = False,
    progress: bool = True,
    remake: bool = False,
) -> dict:
    """Chapter 5 for one run, from its published weights: ``qcfg`` with 8-bit activations (W8A8)
    run by torch.ao's integer CPU kernels against its simulation on the test set, per head; and
    per-class curvature (:func:`ltmpq.fairness.class_curvature`) on balanced validation images
    (every head of ``ecfg``) and on training images (baseline)."""
    r = plan.Run(ExplainRun(cfg, dcfg, qcfg, ecfg), "explain")
    return _get(r, profile, lambda: _explain(r, profile, progress, remake), compute=compute, remake=remake)


def _explain(r: plan.Run, profile: str, progress: bool, remake: bool) -> dict:
    from dataclasses import replace

    from . import fairness, integer

    run, path = r.config, r.path(profile)
    cfg, dcfg, qcfg, ecfg = run.stage1, run.decouple, run.quant, run.explain
    t0 = time.perf_counter()
    dec = decoupled(cfg, dcfg, profile, compute=True, progress=progress, remake=remake)
    counts = stage1(cfg, profile)["train_counts"]
    data = artifacts.dataset()
    splits = artifacts.splits_for(cfg, data)
    model, sha = artifacts.stage1_weights(cfg, data, progress=progress)
    heads = artifacts.classifiers(cfg, dcfg, progress=progress)
    w8a8 = replace(qcfg, act_bits=8)
    calib_raw, calib_counts = _calibration(cfg, w8a8, data, splits, counts)
    calib = to_input(calib_raw)
    xt = to_input(torch.from_numpy(data.test_x[splits.test]))
    yt = data.test_y[splits.test]
    seconds: dict[str, float] = {}
    t1 = time.perf_counter()
    runtime = {}
    for h in tqdm(ecfg.heads, desc=f"{cfg.tag} integer", disable=not progress, leave=False):
        kw = {"head": heads[h], "reduce_range": ecfg.reduce_range, "engine": ecfg.engine}
        runtime[h] = integer.compare_models(model, w8a8, calib, xt, yt, **kw)
        # the same, the simulation fed the integer model's rounded input: what is left is the kernels'
        runtime[h]["agreement_rounded_input"] = integer.compare_models(
            model, w8a8, calib, xt, yt, round_sim_input=True, **kw
        )["agreement"]
    seconds["integer"] = round(time.perf_counter() - t1, 2)
    t1 = time.perf_counter()
    n = len(counts)
    yv_all = data.train_y[splits.val]
    vi = mp.balanced_subset(yv_all, ecfg.val_images)
    xv, yv = to_input(torch.from_numpy(data.train_x[splits.val][vi])), torch.from_numpy(yv_all[vi]).long()
    ytr_all = data.train_y[splits.train]
    ti = np.sort(np.concatenate([np.flatnonzero(ytr_all == c)[: ecfg.train_per_class] for c in range(n)]))
    xtr, ytr = (
        to_input(torch.from_numpy(data.train_x[splits.train][ti])),
        torch.from_numpy(ytr_all[ti]).long(),
    )
    kw = {"num_classes": n, "samples": ecfg.samples, "seed": ecfg.seed, "bits": ecfg.bits}
    curvature = {"val": {}, "train": {}}
    for h in tqdm(ecfg.heads, desc=f"{cfg.tag} curvature", disable=not progress, leave=False):
        curvature["val"][h] = fairness.class_curvature(model, heads[h], xv, yv, qcfg, **kw).to_dict("list")
    curvature["train"]["baseline"] = fairness.class_curvature(
        model, heads["baseline"], xtr, ytr, qcfg, **kw
    ).to_dict("list")
    seconds["curvature"] = round(time.perf_counter() - t1, 2)
    payload = r.payload(profile) | {"quant": asdict(w8a8), "explain": asdict(ecfg),
               "weights_sha256": sha, "classifiers_sha256": dec.get("classifiers_sha256"),
               "train_counts": counts, "calibration_counts": calib_counts,
               "integer": runtime, "curvature": curvature, "seconds": seconds,
               "torch_quantized_engine": ecfg.engine, "vnni": integer.vnni_available()}  # fmt: skip
    source = dec["provenance"]["data_source"]
    return results.save(path, run, payload, provenance.record(run, source, time.perf_counter() - t0))


def _evaluation(labels: np.ndarray, pred: np.ndarray, counts, keep_predictions: bool) -> dict:
    ev = evaluate(labels, pred, counts)
    ev.pop("confusion")
    if keep_predictions:
        ev["predictions"] = encode_predictions(pred)
    return ev


def _measure_sensitivity(
    model, heads, xv, yv, yv_tensor, groups, n_classes, qcfg, mcfg, seed, progress
) -> dict:
    """The single-layer sweep (every head) and the Hessian traces (budget heads) of one run."""
    t1 = time.perf_counter()
    bar = (lambda it: tqdm(it, desc="sensitivity", leave=False)) if progress else None
    float_logits, logits = mp.single_layer_sweep(model, heads, xv, mcfg.choices, qcfg, progress=bar)
    sweep = {h: {"float": encode_predictions(float_logits[h].argmax(1).numpy()), "layers": {}} for h in heads}
    for (layer, b), by_head in logits.items():
        for h, lg in by_head.items():
            sweep[h]["layers"].setdefault(layer, {})[str(b)] = {
                "predictions": encode_predictions(lg.argmax(1).numpy()),
                "kl": mp.kl_per_class(float_logits[h], lg, yv, n_classes),
            }
    sweep_seconds = time.perf_counter() - t1
    t1 = time.perf_counter()
    hessians: dict[str, dict] = {}
    wanted = [m for m in HESSIAN_METRICS if m in mcfg.budget_metrics]
    tail_only = [1.0 if c in groups["tail"] else 0.0 for c in range(n_classes)]
    xh, yh = xv, yv_tensor  # the very tensors when all images are used (same memory layout, same sums)
    if mcfg.hessian_images is not None:
        keep = torch.from_numpy(mp.balanced_subset(yv, mcfg.hessian_images))
        xh, yh = xv[keep].contiguous(memory_format=torch.channels_last), yv_tensor[keep]
    for h in mcfg.budget_heads if wanted else ():
        for m in wanted:
            hessians.setdefault(h, {})[m] = mp.model_traces(
                model, heads[h], xh, yh, qcfg, samples=mcfg.hessian_samples,
                class_weights=tail_only if m == "hessian_tail" else None,
                seed=int(np.random.SeedSequence([mcfg.seed, seed]).generate_state(1)[0]),
            )  # fmt: skip
    hessian_seconds = time.perf_counter() - t1
    return {"sweep": sweep, "hessians": hessians,
            "seconds": {"sweep": round(sweep_seconds, 2), "hessian": round(hessian_seconds, 2)}}  # fmt: skip


def mixed_precision(
    cfg: Stage1Config,
    dcfg: DecoupleConfig,
    qcfg: QuantConfig,
    mcfg: MPQConfig,
    profile: str,
    *,
    compute: bool = False,
    progress: bool = True,
    remake: bool = False,
) -> dict:
    """Chapter 4 for one run: per-layer sensitivities on the validation split, then every
    allocation of :func:`ltmpq.mpq.allocations` evaluated on validation and test images.

    Stores, per head, each (layer, bits)'s validation predictions and per-class KL (so any
    accuracy metric and any validation resample can be recomputed), the Hessian traces, and
    per allocation its bit map, size, metrics and test predictions.
    """
    # what chapter 4's per-layer allocation implements: symmetric weights, nothing else quantized
    weight_only = {"act_bits": None, "logit_bits": None, "first_last_bits": None,
                   "weight_scheme": "symmetric", "ptq": "rtn", "bias_correction": False, "equalize": False,
                   "rebalance_after": False}  # fmt: skip
    unsupported = {k: getattr(qcfg, k) for k, v in weight_only.items() if getattr(qcfg, k) != v}
    if unsupported:
        raise ValueError(
            f"chapter 4's mixed precision quantizes weights only, symmetrically; this QuantConfig sets "
            f"{unsupported}: use {weight_only}"
        )
    r = plan.Run(MPQRun(cfg, dcfg, qcfg, mcfg), "mpq")
    return _get(r, profile, lambda: _allocate(r, profile, progress, remake), compute=compute, remake=remake)


def _allocate(r: plan.Run, profile: str, progress: bool, remake: bool) -> dict:
    run, path = r.config, r.path(profile)
    cfg, dcfg, qcfg, mcfg = run.stage1, run.decouple, run.quant, run.mpq
    t0 = time.perf_counter()
    dec = decoupled(cfg, dcfg, profile, compute=True, progress=progress, remake=remake)  # and stage 1 first
    counts = stage1(cfg, profile)["train_counts"]
    groups = class_groups(counts)
    data = artifacts.dataset()
    splits = artifacts.splits_for(cfg, data)
    model, sha = artifacts.stage1_weights(cfg, data, progress=progress)
    feats = artifacts.features(cfg, data, progress=progress, model=(model, sha))
    all_heads = artifacts.classifiers(cfg, dcfg, progress=progress)
    params = mp.layer_params(model)
    randoms = mp.random_maps(params, mcfg, cfg.seed)  # drawn first: a budget no random map reaches fails now
    names = [h for h in all_heads if h in {*mcfg.rule_heads, *mcfg.budget_heads}]
    heads = {h: all_heads[h] for h in names}
    xv = to_input(torch.from_numpy(data.train_x[splits.val]))
    yv = feats["val_labels"].numpy()
    seconds = {"prepare": round(time.perf_counter() - t0, 2)}
    # the expensive, allocation-independent part is cached: a rerun (or a resumed run) reuses it
    key = config_hash(SensitivityRun(cfg, dcfg, qcfg, mcfg.choices, tuple(names), mcfg.hessian_samples,
                                     tuple(m for m in HESSIAN_METRICS if m in mcfg.budget_metrics),
                                     tuple(mcfg.budget_heads), mcfg.seed, mcfg.hessian_images))  # fmt: skip
    cache = artifacts.run_dir(cfg) / f"mpq-sensitivity-{key}-{feats['weights_sha256'][:12]}.json"
    try:
        measured = json.loads(cache.read_text())
        if not isinstance(measured, dict) or not {"sweep", "hessians", "seconds"} <= set(measured):
            raise ValueError(f"incomplete sensitivity cache {cache}")
    except (OSError, ValueError):
        measured = _measure_sensitivity(model, heads, xv, yv, feats["val_labels"], groups, len(counts), qcfg,
                                        mcfg, cfg.seed, progress)  # fmt: skip
        write_json(cache, measured)
    sweep, hessians = measured["sweep"], measured["hessians"]
    seconds |= measured["seconds"]

    tables = {h: sensitivity_tables(sweep[h], yv, counts, groups) for h in names}
    for h, by_metric in hessians.items():
        w = mp.layer_weights(model, qcfg, heads[h])
        for m, traces in by_metric.items():
            tables[h][m] = mp.hawq_sensitivity(traces, w, mcfg.choices, qcfg)
    allocations = mp.allocations(tables, params, mcfg, cfg.seed, randoms)

    t1 = time.perf_counter()
    inputs = {
        "val": (data.train_x[splits.val], yv),
        "test": (data.test_x[splits.test], feats["test_labels"].numpy()),
    }
    by_backbone: dict[tuple, list[dict]] = {}
    for a in allocations:
        by_backbone.setdefault(tuple(a["bit_map"][n] for n in list(model.layers)[:-1]), []).append(a)
    for key, group in tqdm(
        by_backbone.items(), desc=f"{cfg.tag} allocations", disable=not progress, leave=False
    ):
        bmap = group[0]["bit_map"]
        if all(b == FLOAT for b in key):
            fs = {split: feats[f"{split}_features"] for split in inputs}  # chapter 2's float features
        else:
            qmodel = quantize_model(model, bmap, qcfg)
            fs = {split: predict(qmodel, torch.from_numpy(xs))[0] for split, (xs, _) in inputs.items()}
        for a in group:
            head = heads[a["head"]]
            last = a["bit_map"][list(model.layers)[-1]]  # the classifier's bits
            qhead = head if last == FLOAT else quantize_head(head, last, qcfg)
            with torch.no_grad():
                for split, (_, labels) in inputs.items():
                    pred = qhead(fs[split]).argmax(1).numpy()
                    a[split] = _evaluation(labels, pred, counts, keep_predictions=split == "test")
            a["size"] = model_size(model, a["bit_map"], qcfg.granularity)
    seconds["evaluation"] = round(time.perf_counter() - t1, 2)

    payload = r.payload(profile) | {"quant": asdict(qcfg), "mpq": asdict(mcfg),
               "weights_sha256": feats["weights_sha256"], "classifiers_sha256": dec.get("classifiers_sha256"),
               "train_counts": counts, "val_labels": encode_predictions(yv),
               "test_labels": encode_predictions(inputs["test"][1]), "layer_params": params,
               "sweep": sweep, "hessians": hessians, "allocations": allocations,
               "seconds": seconds}  # fmt: skip
    return results.save(path, run, payload, provenance.record(run, data.source, time.perf_counter() - t0))
