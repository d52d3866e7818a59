"""Inpainting masks (taught in ``notebooks/01_masks.ipynb``): Mask Set I (irregular strokes and
polygons, by hole-ratio bin), Mask Set II (LaMa's large masks), their hole ratio and pictures
(:mod:`.draw`), and masks as files: binarising, `MaskFolder`, the fixed evaluation set
``SHIPPED_MASKS`` (:mod:`.files`).

Convention everywhere: 1 = hole (missing), 0 = known. A mask is a (H, W) ``uint8`` array of 0/1,
or a float tensor (B, 1, H, W) once it meets a model. Import from here, not from the inner modules.
"""


from bidsnet_lib.masks.draw import (
    EVAL_PRESETS,
    LARGE_MASK_PRESETS,
    MAX_SIZE,
    MIN_SIZE,
    RATIO_BINS,
    SHAPE_TRIES,
    SHIPPED_MASKS,
    IrregularMaskParams,
    LargeMaskPreset,
    bin_counts,
    bin_name,
    draw_lama_boxes,
    draw_lama_strokes,
    draw_polygon,
    draw_shape,
    draw_stroke,
    hole_ratio,
    in_bin,
    irregular_mask,
    large_mask,
    mask_gallery,
    masks_to_tensor,
    overlay_mask,
    read_photo,
    rotate_flip,
    settle,
    settle_pixels,
    square_photo,
)
from bidsnet_lib.masks.files import (
    MaskFolder,
    binarize_mask,
    read_mask_file,
    write_eval_set,
)

__all__ = [
    "RATIO_BINS",
    "MIN_SIZE",
    "MAX_SIZE",
    "EVAL_PRESETS",
    "SHIPPED_MASKS",
    "bin_name",
    "in_bin",
    "bin_counts",
    "hole_ratio",
    "draw_stroke",
    "draw_polygon",
    "rotate_flip",
    "IrregularMaskParams",
    "draw_shape",
    "SHAPE_TRIES",
    "settle",
    "settle_pixels",
    "irregular_mask",
    "LargeMaskPreset",
    "LARGE_MASK_PRESETS",
    "draw_lama_strokes",
    "draw_lama_boxes",
    "large_mask",
    "masks_to_tensor",
    "overlay_mask",
    "square_photo",
    "read_photo",
    "mask_gallery",
    "binarize_mask",
    "read_mask_file",
    "MaskFolder",
    "write_eval_set",
]
