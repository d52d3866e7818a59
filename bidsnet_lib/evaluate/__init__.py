"""Evaluating inpainting methods (taught in ``notebooks/07_evaluation.ipynb``): the photos and
mask groups scored (:mod:`.inputs`), the result tables, intervals and plots (:mod:`.results`), and
the run itself, `evaluate` (:mod:`.evaluation`), realism beside fidelity: hole sharpness and
detectability (:mod:`.realism`), and the blind pair test by eye (:mod:`.pairs`).

Import from here, not from the inner modules.
"""


from bidsnet_lib.evaluate.evaluation import (
    InpainterMethod,
    ModelMethod,
    as_method,
    default_baselines,
    default_cache_dir,
    evaluate,
)
from bidsnet_lib.evaluate.inputs import (
    SET_NAMES,
    STANDIN_PHOTOS,
    MaskGroup,
    fit_mask,
    load_mask_groups,
    load_photos,
    write_standin_data,
)
from bidsnet_lib.evaluate.native import (
    NATIVE_METRICS,
    NativePair,
    NativeResult,
    PeakMemory,
    evaluate_native,
    load_native_set,
    score_fill,
    whole_photo_baseline,
)
from bidsnet_lib.evaluate.pairs import (
    PairScore,
    judge_pairs,
    make_pairs,
    read_picks,
    record_pick,
    score_pairs,
    wilson_interval,
)
from bidsnet_lib.evaluate.realism import (
    C2ST,
    FEATURES,
    C2STProtocol,
    Detectability,
    RealismCheck,
    cut_patches,
    detectability,
    detectability_difference,
    hole_sharpness,
    patch_centres,
    patch_features,
)
from bidsnet_lib.evaluate.results import (
    COMPARED,
    COMPARISON_COLUMNS,
    CSV_COLUMNS,
    HIGHER_IS_BETTER,
    METRICS,
    PER_PHOTO,
    PER_PHOTO_COLUMNS,
    REFERENCE,
    EvalResult,
    Example,
    write_outputs,
)

__all__ = [
    "NATIVE_METRICS",
    "NativePair",
    "NativeResult",
    "PeakMemory",
    "evaluate_native",
    "load_native_set",
    "score_fill",
    "whole_photo_baseline",
    "STANDIN_PHOTOS",
    "SET_NAMES",
    "MaskGroup",
    "write_standin_data",
    "load_mask_groups",
    "load_photos",
    "fit_mask",
    "METRICS",
    "HIGHER_IS_BETTER",
    "PER_PHOTO",
    "COMPARED",
    "CSV_COLUMNS",
    "PER_PHOTO_COLUMNS",
    "COMPARISON_COLUMNS",
    "REFERENCE",
    "Example",
    "EvalResult",
    "write_outputs",
    "ModelMethod",
    "InpainterMethod",
    "as_method",
    "default_cache_dir",
    "default_baselines",
    "evaluate",
    "hole_sharpness",
    "C2STProtocol",
    "FEATURES",
    "patch_centres",
    "cut_patches",
    "patch_features",
    "C2ST",
    "Detectability",
    "detectability",
    "detectability_difference",
    "RealismCheck",
    "make_pairs",
    "record_pick",
    "read_picks",
    "judge_pairs",
    "score_pairs",
    "PairScore",
    "wilson_interval",
]
