"""Solutions to the exercises of notebooks/00_quickstart.ipynb (full source of each answer cell)."""

SOLUTIONS = {
    1: '''\
# Exercise 1: draw a Mask Set II mask instead (LaMa's large masks, notebook 01):
# masks.large_mask(SIDE, SIDE, "thick", np.random.default_rng(1)). Assign it to `thick_mask`, and
# the model's fill of the photo under it to `thick_filled`. How does it look beside Telea's?
thick_mask = masks.large_mask(SIDE, SIDE, "thick", np.random.default_rng(1))
thick_filled = model.inpaint(photo, thick_mask)
show([masks.overlay_mask(photo, thick_mask, HOLE_COLOUR, 0.75), telea.fill(photo, thick_mask), thick_filled],
     [f"input: {masks.hole_ratio(thick_mask):.0%} missing", "Telea", "BIDS-Net"])
''',
    2: '''\
# Exercise 2: a network predicts every pixel, but an inpainter keeps the known ones. Write
# composite(prediction, photo, mask): the prediction where mask == 1, the photo where mask == 0,
# for uint8 (H, W, 3) images and a (H, W) 0/1 mask; return uint8 (H, W, 3). Hint: np.where.
def composite(prediction, photo, mask):
    return np.where(mask[:, :, None] == 1, prediction, photo).astype(np.uint8)
''',
    3: '''\
# Exercise 3: use the map. Which notebook would you open to change (a) the number of random
# features of the fast attention, (b) the weights of the perceptual and style losses, (c) how big
# the holes of the training masks are? Assign the notebook numbers as ints.
where = {"random features": 3, "loss weights": 5, "training masks": 1}
''',
}
