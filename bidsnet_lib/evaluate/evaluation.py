"""Evaluate inpainting the way papers report it, with intervals a reader can trust: PSNR, SSIM,
LPIPS, FID and a hole colour error per mask group, next to OpenCV's Telea and Navier–Stokes,
biharmonic inpainting and PatchMatch; behind the ``bidsnet evaluate`` command.

Taught in ``notebooks/07_evaluation.ipynb``. The protocol, stated in every table it writes:

- **Groups.** The shipped root ``bidsnet_lib/eval_masks`` gives one group per Mask Set I hole-ratio bin
  (``set1/10-20`` ...) and one per Mask Set II preset (``set2/thin`` ...); any other folder of
  masks is split into the Set I bins by each mask's hole ratio (``MaskFolder.by_bin``).
- **Pairing.** Every mask of a group is paired with every photo. No pairing is random; the seed
  only picks the example shown per group, seeds torch for any stochastic model, and seeds the
  bootstrap.
- **Intervals over photos.** Each photo's scores are averaged over the group's masks; a cell gives
  the mean over photos and its 95 % percentile bootstrap interval, photos resampled
  (:mod:`bidsnet_lib.bootstrap`). Each model is compared with each baseline photo by photo: the
  mean paired difference with its own interval, and the share of photos it wins.
- **Resolution.** ``size=N``: each photo is centre-cropped to a square and resized to N×N, the
  papers' protocol (256×256); ``size=None`` (``--size native``): each photo at its own size,
  every mask stretched to it (nearest neighbour). ``bidsnet evaluate`` runs the model through
  ``bidsnet_lib.inference.Inpainter``, the crop-around-the-holes path of ``bidsnet inpaint``
  (at the checkpoint's working size), and the baselines on the whole image, as users run them.
- **Composited, 8-bit.** Every method's output keeps the known pixels of the input bit for bit and
  is rounded to 8 bits, as a saved PNG would be; metrics compare it with the original photo.
- **Hole colour error** (:func:`bidsnet_lib.metrics.hole_colour_error`) needs no ground truth:
  each filled hole's mean colour against its ring of known pixels, so colour casts show; the
  original photos' own score is given beside it.
- **FID** is computed per group from that group's n images (real: the photos of its pairs;
  generated: the outputs); with tens of images it is biased and only comparable at equal n, so
  the count is in every row and a warning is issued. It has no interval.
- **Realism** (``realism=RealismCheck(train photos)``, ``bidsnet evaluate --realism``): hole
  sharpness and C2ST detectability per group and method (:mod:`.realism` states the protocol).
- **Seconds per image**: each method's wall time on this machine; a baseline read from the
  output cache (:class:`bidsnet_lib.baselines.CachedBaseline`) reports the time it took when
  it was computed.

Command line (``bidsnet_lib.commands.evaluate``)::

    bidsnet evaluate --checkpoint CKPT --images data/images/test --masks bidsnet_lib/eval_masks --out results/
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from bidsnet_lib.baselines import (
    BASELINES,
    Baseline,
    CachedBaseline,
    make_baseline,
    patchmatch_available,
)
from bidsnet_lib.bootstrap import CONFIDENCE, N_RESAMPLES, bootstrap_interval, paired_difference
from bidsnet_lib.evaluate.inputs import (
    MaskGroup,
    fit_mask,
)
from bidsnet_lib.evaluate.realism import RealismCheck
from bidsnet_lib.evaluate.results import (
    COMPARED,
    HIGHER_IS_BETTER,
    METRICS,
    REFERENCE,
    EvalResult,
    Example,
)
from bidsnet_lib.fid import FID_MIN_IMAGES, FIDMetric, FIDSampleSizeWarning
from bidsnet_lib.masks import MIN_SIZE, hole_ratio
from bidsnet_lib.metrics import COLOUR_RING, hole_colour_error, psnr, ssim
from bidsnet_lib.model import check_inputs, composite
from bidsnet_lib.plumbing import check_int


# ----------------------------------------------------------------------------- methods
class ModelMethod:
    """A network ``model(image, mask) -> (B, 3, H, W)`` as a method: eval mode, no gradients,
    composited (known pixels kept). Runs on the model's device; returns on the input's."""

    def __init__(self, model: torch.nn.Module, name: str = "BIDS-Net"):
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model: got {type(model).__name__}, expected a torch.nn.Module")
        self.model, self.name = model, name

    def __call__(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        first = next(self.model.parameters(), None)
        device = image.device if first is None else first.device
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                pred = self.model(image.to(device), mask.to(device))  # (B, 3, H, W)
        finally:
            self.model.train(was_training)
        return composite(pred.float().clamp(0, 1).to(image.device), image, mask)


class InpainterMethod:
    """An ``Inpainter`` (any image size: crops around the holes) as a method on tensors."""

    def __init__(self, inpainter, name: str | None = None):
        self.inpainter, self.name = inpainter, name or inpainter.label

    def __call__(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        check_inputs(image, mask)
        rgb = (image * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()  # (B, H, W, 3)
        holes = mask[:, 0].to(torch.uint8).cpu().numpy()  # (B, H, W)
        filled = self.inpainter.inpaint_many(list(rgb), list(holes))
        out = torch.from_numpy(np.stack(filled)).permute(0, 3, 1, 2).to(image.device, image.dtype) / 255
        return composite(out, image, mask)


def as_method(model, name: str | None = None) -> Callable:
    """A callable ``(image (B, 3, H, W), mask (B, 1, H, W)) -> composited (B, 3, H, W)``."""
    from bidsnet_lib.inference import Inpainter

    if isinstance(model, Inpainter):
        return InpainterMethod(model, name)
    if isinstance(model, torch.nn.Module):
        return ModelMethod(model, name or "BIDS-Net")
    if callable(model):
        return model
    raise TypeError(f"model: got {type(model).__name__}, expected a BIDSNet (nn.Module), an Inpainter, "
                    "a callable (image, mask) -> image, or a dict of them by name")


def default_cache_dir() -> Path:
    """Where ``bidsnet evaluate`` keeps baseline outputs: ``$XDG_CACHE_HOME/bidsnet/baselines``
    (``~/.cache/bidsnet/baselines`` when unset)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bidsnet" / "baselines"


def default_baselines() -> tuple[str, ...]:
    """Every baseline of :data:`bidsnet_lib.baselines.BASELINES`, PatchMatch only when its package
    is installed (a warning says when it is left out)."""
    if patchmatch_available():
        return tuple(BASELINES)
    warnings.warn("PatchMatch left out of the baselines: pypatchmatch is not installed "
                  "(pip install pypatchmatch)", UserWarning, stacklevel=3)
    return tuple(b for b in BASELINES if b != "patchmatch")


def _methods(model, label: str, baselines: Sequence, radius: int, cache) -> tuple[dict[str, Callable], list[str]]:
    """Every method by name, baselines first, and the names of the baselines."""
    methods = {}
    for item in baselines:
        if isinstance(item, str):
            baseline = make_baseline(item, radius if item in ("telea", "ns") else None)
        elif callable(item) and isinstance(getattr(item, "name", None), str):
            baseline = item
        else:
            raise TypeError(f"baselines: got {item!r:.60}, expected names from {list(BASELINES)} or "
                            "baselines (callables with a name, see make_baseline)")
        if cache is not None and isinstance(baseline, Baseline) and baseline.cache_outputs:
            baseline = CachedBaseline(baseline, cache)
        methods[baseline.name] = baseline
    names = list(methods)
    if isinstance(model, Mapping):
        models = dict(model)
    else:
        models = {} if model is None else {label: model}
    for name, m in models.items():
        if name in methods or name == REFERENCE:
            raise ValueError(f"model name: got {name!r}, a baseline's or the reference's name, expected "
                             "a distinct name")
        methods[name] = as_method(m, name)
    if not methods:
        raise ValueError("nothing to evaluate: model is None and baselines is empty")
    return methods, names


# ----------------------------------------------------------------------------- evaluation
def _std(values: list[float]) -> float:
    """The spread over pairs (NaN pairs left out); NaN when a value is infinite (a perfect fill)."""
    a = np.asarray(values, dtype=np.float64)
    a = a[~np.isnan(a)]
    return float(a.std()) if len(a) and np.isfinite(a).all() else math.nan


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return (x * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()  # (H, W, 3)


def evaluate(model, images, mask_groups, *, label: str = "BIDS-Net", baselines=None,
             radius: int = 3, lpips=None, fid_features=None, skipped: Mapping[str, str] | None = None,
             batch_size: int = 16, seed: int = 0, progress: bool = True,
             protocol: str | None = None, cache=None, n_resamples: int = N_RESAMPLES,
             realism: RealismCheck | None = None) -> EvalResult:
    """Every metric for the model(s) and the baselines on every (mask, photo) pair of each group,
    with bootstrap intervals over photos and each model's paired differences to each baseline.

    ``model``: a BIDSNet, an ``Inpainter``, any callable ``(image, mask) -> image`` on tensors, a
    dict ``{name: one of those}``, or None (baselines only). ``images``: RGB uint8 (H, W, 3)
    arrays, as a dict by name or a list. ``mask_groups``: ``MaskGroup``s (see
    :func:`load_mask_groups`) or a dict ``{name: [masks]}``; masks are resized to each photo.
    ``baselines``: names (``"telea"``, ``"ns"``, ``"biharmonic"``, ``"patchmatch"``) or baseline
    objects (:func:`bidsnet_lib.baselines.make_baseline`); None: :func:`default_baselines`.
    ``radius``: Telea's and NS's neighbourhood. ``cache``: a folder keeping the outputs of the
    slow baselines (:class:`bidsnet_lib.baselines.CachedBaseline`), or None.
    ``lpips``: a metric ``(pred, target) -> (B,)`` with a ``label`` (an ``LPIPSMetric``) or None;
    ``fid_features``: a feature extractor ``images (B, 3, H, W) -> (B, D)`` or None. A metric
    left None is reported as skipped, with the reason from ``skipped`` if given.
    ``n_resamples`` and ``seed`` set the bootstrap. ``realism``: a :class:`RealismCheck` (its
    training photos, apart from ``images``) adds hole sharpness and detectability, or None.
    """
    if isinstance(images, Mapping):
        photos = dict(images)
    elif isinstance(images, Sequence) and not isinstance(images, str):
        photos = {f"image {i}": im for i, im in enumerate(images)}
    else:
        raise TypeError(f"images: got {type(images).__name__}, expected a dict or list of RGB uint8 arrays")
    if not photos:
        raise ValueError("images: got none, expected at least one photo")
    for name, im in photos.items():
        if not isinstance(im, np.ndarray) or im.dtype != np.uint8 or im.ndim != 3 or im.shape[2] != 3 \
                or min(im.shape[:2]) < MIN_SIZE:
            raise ValueError(f"images[{name!r}]: got {getattr(im, 'dtype', type(im).__name__)} "
                             f"{getattr(im, 'shape', '')}, expected RGB uint8 (H, W, 3), sides >= {MIN_SIZE}")
    if isinstance(mask_groups, Mapping):
        groups = [MaskGroup("masks", str(k), list(v)) for k, v in mask_groups.items()]
    else:
        groups = list(mask_groups)
    if not groups or not all(isinstance(g, MaskGroup) for g in groups):
        raise ValueError(f"mask_groups: got {groups!r:.80}, expected a non-empty list of MaskGroup "
                         "or a dict {name: [masks]}")
    check_int("batch_size", batch_size, 1)
    check_int("seed", seed, 0)
    check_int("n_resamples", n_resamples, 1)
    if lpips is not None and not callable(lpips):
        raise TypeError(f"lpips: got {type(lpips).__name__}, expected a metric (pred, target) -> (B,) or None")
    if fid_features is not None and not callable(fid_features):
        raise TypeError(f"fid_features: got {type(fid_features).__name__}, expected a feature "
                        "extractor images (B, 3, H, W) -> (B, D) or None")
    if realism is not None:  # realism (issue 29): a fresh start, no training photo among the test photos
        if not isinstance(realism, RealismCheck):
            raise TypeError(f"realism: got {type(realism).__name__}, expected a RealismCheck or None")
        realism.start(photos)
    methods, baseline_names = _methods(model, label, default_baselines() if baselines is None else baselines,
                                       radius, cache)
    skipped = dict(skipped or {})
    notes = {"psnr": "10·log10(1/MSE) per image on [0, 1]",
             "ssim": "Gaussian window 11, σ 1.5, per image",
             "lpips": getattr(lpips, "label", "LPIPS (custom metric)") if lpips is not None
             else f"skipped: {skipped.get('lpips', 'not requested')}",
             "fid": f"skipped: {skipped.get('fid', 'not requested')}",
             "colour": f"per filled hole, the distance (0-255 RGB) of its mean colour from that of "
                       f"the known pixels within {COLOUR_RING} px of it, area-weighted over the holes"}
    if fid_features is not None:
        fid_name = getattr(fid_features, "name", type(fid_features).__name__)
        fid_comparable = bool(getattr(fid_features, "comparable", False))
        notes["fid"] = (f"{fid_name}{'' if fid_comparable else ' (NOT comparable to published FID)'}"
                        f"; per row from its n real and n generated images: below {FID_MIN_IMAGES} "
                        "biased upwards, compare only at equal n; no interval")
    shapes = {im.shape[:2] for im in photos.values()}
    if protocol is None:
        size = "x".join(map(str, next(iter(shapes)))) if len(shapes) == 1 else "their own sizes"
        protocol = f"{len(photos)} photos at {size}."
    confidence = f"{100 * CONFIDENCE:g} %"
    protocol += (f" Each mask of a group is paired with each of the {len(photos)} photos; each photo's "
                 f"scores are averaged over the group's masks, and [brackets] give the {confidence} "
                 f"percentile bootstrap interval of the mean over photos ({n_resamples:,} resamples "
                 f"of the {len(photos)} photos, seed {seed}).")
    stats = {"seed": seed, "n_resamples": n_resamples}

    names = list(photos)
    total = sum(len(g.masks) for g in groups) * len(names)
    rows, per_photo, comparisons, examples, few_fid = [], [], [], [], []
    timing = {name: [0.0, 0] for name in methods}
    with torch.random.fork_rng(devices=[]), tqdm(total=total, unit="pair", desc="evaluate",
                                                  disable=not progress) as bar:
        torch.manual_seed(seed)
        for g_index, group in enumerate(groups):
            shown = int(np.random.default_rng([seed, g_index]).integers(len(names) * len(group.masks)))
            run = _run_group(group, photos, methods, lpips, fid_features, batch_size, shown, bar, timing,
                             realism)
            examples.append(run["example"])
            common = {"set": group.set_name, "group": group.name,
                      "hole_ratio": float(np.mean(run["ratios"])), "n": len(run["ratios"]),
                      "n_photos": len(names)}
            means = {}  # method -> metric -> per-photo means, in photo order
            for name in [*methods, REFERENCE]:
                for metric in METRICS:
                    if name == REFERENCE and metric != "colour":
                        continue
                    value, low, high, std, note = math.nan, math.nan, math.nan, math.nan, notes[metric]
                    if metric == "fid" and run["fid"]:
                        result = run["fid"][name]
                        value, note = result.fid, result.label
                        if result.n_fake < max(FID_MIN_IMAGES, result.feature_dim + 1):
                            few_fid.append(result.n_fake)
                    elif metric != "fid" and not note.startswith("skipped"):
                        pairs = run["scores"][name][metric]
                        photo_means = _photo_means(pairs, run["photos"], names)
                        means.setdefault(name, {})[metric] = photo_means
                        per_photo += [{"set": group.set_name, "group": group.name, "photo": p,
                                       "method": name, "metric": metric, "value": v,
                                       "n_masks": len(group.masks)} for p, v in zip(names, photo_means, strict=True)]
                        value, std = float(np.mean(photo_means)), _std(pairs)
                        low, high = bootstrap_interval(photo_means, n_resamples=n_resamples, seed=seed)
                    rows.append({**common, "method": name, "metric": metric, "value": value,
                                 "ci_low": low, "ci_high": high, "std": std,
                                 "note": "" if metric in ("psnr", "ssim") else note})
            comparisons += _compare(group, means, [m for m in methods if m not in baseline_names],
                                    baseline_names, stats)
        if realism is not None:  # realism (issue 29): train each method's C2ST, score the groups
            found = realism.finish(methods, groups, rows, baselines=baseline_names, batch_size=batch_size,
                                   seed=seed, n_resamples=n_resamples, progress=progress)
            rows, per_photo, comparisons = rows + found[0], per_photo + found[1], comparisons + found[2]
    if few_fid:
        warnings.warn(f"FID per group from {min(few_fid)} to {max(few_fid)} images: far below the "
                      f"{FID_MIN_IMAGES} a stable estimate needs; biased upwards, compare only at "
                      "equal n (stated in every row)", FIDSampleSizeWarning, stacklevel=2)
    seconds = {name: (t / n if n else math.nan) for name, (t, n) in timing.items()}
    return EvalResult(rows, list(methods), notes, protocol, examples, baselines=baseline_names,
                      per_photo=per_photo, comparisons=comparisons, seconds=seconds, bootstrap=stats,
                      realism={} if realism is None else realism.summary)


def _photo_means(pairs: list[float], photo_of_pair: list[str], names: list[str]) -> list[float]:
    """Each photo's mean over its pairs (NaN pairs, holes without a ring, left out)."""
    values = np.asarray(pairs, dtype=np.float64)
    owners = np.asarray(photo_of_pair)
    means = []
    for name in names:
        v = values[owners == name]
        v = v[~np.isnan(v)]
        means.append(float(v.mean()) if len(v) else math.nan)
    return means


def _compare(group: MaskGroup, means: dict, models: list[str], baselines: list[str], stats: dict) -> list[dict]:
    """Each model against each baseline on the compared metrics: paired differences over photos."""
    out = []
    for metric in COMPARED:
        present = [b for b in baselines if metric in means.get(b, {})]
        if not present:
            continue
        higher = HIGHER_IS_BETTER[metric]
        group_means = {b: np.mean(means[b][metric]) for b in present}
        best = (max if higher else min)(present, key=lambda b: group_means[b])
        for model in models:
            if metric not in means.get(model, {}):
                continue
            for baseline in present:
                diff = paired_difference(means[model][metric], means[baseline][metric],
                                         higher_is_better=higher, n_resamples=stats["n_resamples"],
                                         seed=stats["seed"])
                out.append({"set": group.set_name, "group": group.name, "model": model,
                            "baseline": baseline, "metric": metric, **diff, "best": baseline == best})
    return out


def _batches(pairs: list[tuple[str, int]], photos: dict, batch_size: int):
    """Consecutive pairs in batches of at most batch_size whose photos share one shape."""
    batch = []
    for pair in pairs:
        if batch and (len(batch) == batch_size
                      or photos[pair[0]].shape != photos[batch[0][0]].shape):
            yield batch
            batch = []
        batch.append(pair)
    if batch:
        yield batch


def _fid_metrics(extractor, methods) -> dict[str, FIDMetric]:
    first = next(extractor.parameters(), None) if isinstance(extractor, torch.nn.Module) else None
    device = None if first is None else first.device
    return {name: FIDMetric(extractor, device=device) for name in methods}


def _run_group(group: MaskGroup, photos: dict, methods: dict, lpips, fid_features, batch_size: int,
               shown: int, bar, timing: dict, realism: RealismCheck | None = None) -> dict:
    """Scores, FIDs, hole ratios and photo of every pair of a group, and pair ``shown``'s example;
    adds each method's seconds and images to ``timing``."""
    # Photo-major: at native size consecutive pairs share a photo, so batches have one shape.
    pairs = [(p, m) for p in photos for m in range(len(group.masks))]
    scores = {name: {"psnr": [], "ssim": [], "lpips": [], "colour": []} for name in methods}
    scores[REFERENCE] = {"colour": []}
    fid = _fid_metrics(fid_features, methods) if fid_features is not None else {}
    ratios, owners, example, done = [], [], None, 0
    for batch in _batches(pairs, photos, batch_size):
        shape = photos[batch[0][0]].shape[:2]
        holes = [fit_mask(group.masks[m], shape) for _, m in batch]
        for (p, m), h in zip(batch, holes, strict=True):
            if not h.any():
                source = group.sources[m] if group.sources else f"mask {m}"
                raise ValueError(f"mask group {group.label}: {source} has no hole left at "
                                 f"{shape[0]}x{shape[1]} (photo {p!r}); use a larger size")
        ratios += [hole_ratio(h) for h in holes]
        owners += [p for p, _ in batch]
        target = torch.from_numpy(np.stack([photos[p] for p, _ in batch]))
        target = target.permute(0, 3, 1, 2).float() / 255  # (B, 3, H, W)
        mask = torch.from_numpy(np.stack(holes)).float()[:, None]  # (B, 1, H, W)
        scores[REFERENCE]["colour"] += hole_colour_error(target, mask).tolist()
        real = next(iter(fid.values())).features(target) if fid else None
        outputs = {}
        for name, method in methods.items():
            start = time.perf_counter()
            out = method(target, mask)
            # A cached baseline reports the seconds its outputs took when they were computed.
            timing[name][0] += getattr(method, "last_seconds", time.perf_counter() - start)
            timing[name][1] += len(batch)
            if not isinstance(out, torch.Tensor) or out.shape != target.shape:
                raise ValueError(f"method {name!r} output: got {getattr(out, 'shape', type(out).__name__)}, "
                                 f"expected a tensor {tuple(target.shape)}")
            # Composited again (a custom callable might not) and rounded as a saved PNG would be.
            out = composite((out.detach().float().clamp(0, 1) * 255).round() / 255, target, mask)
            scores[name]["psnr"] += psnr(out, target).tolist()
            scores[name]["ssim"] += ssim(out, target).tolist()
            scores[name]["colour"] += hole_colour_error(out, mask).tolist()
            if lpips is not None:
                scores[name]["lpips"] += lpips(out, target).flatten().tolist()
            if fid:
                fid[name].add_features(real=real, fake=fid[name].features(out))
            if realism is not None:  # realism (issue 29): sharpness and C2ST patches of the pair
                realism.observe(group.label, batch, name, target, out, mask)
            outputs[name] = out
        if done <= shown < done + len(batch):
            i = shown - done
            p, m = batch[i]
            example = Example(group.label, p, group.sources[m] if group.sources else "",
                              _to_uint8(target[i]), holes[i],
                              {name: _to_uint8(o[i]) for name, o in outputs.items()})
        done += len(batch)
        bar.update(len(batch))
    with warnings.catch_warnings():  # one warning for all groups, issued by evaluate()
        warnings.simplefilter("ignore", FIDSampleSizeWarning)
        fids = {name: metric.compute() for name, metric in fid.items()}
    return {"scores": scores, "fid": fids, "ratios": ratios, "photos": owners, "example": example}
