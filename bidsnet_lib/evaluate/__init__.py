"""Evaluating inpainting methods (taught in ``notebooks/07_evaluation.ipynb``): the photos and
mask groups scored (:mod:`.inputs`), the result tables, intervals and plots (:mod:`.results`), and
the run itself, `evaluate` (:mod:`.evaluation`).

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
]
