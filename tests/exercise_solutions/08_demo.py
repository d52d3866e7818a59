"""Solutions to the exercises of notebooks/08_demo.ipynb (full source of each answer cell)."""

SOLUTIONS = {
    1: '''\
# Exercise 1: people paint tightly around an object, and its shadow or halo then survives the
# inpainting. Write grow_mask(mask, pixels) that grows the holes of a (H, W) 0/1 mask by `pixels`
# in every direction (a round brush), returning (H, W) uint8 0/1. Hint: cv2.dilate with
# cv2.getStructuringElement(cv2.MORPH_ELLIPSE, ...).
def grow_mask(mask, pixels):
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pixels + 1, 2 * pixels + 1))
    return cv2.dilate(mask.astype(np.uint8), disk)
''',
    2: '''\
# Exercise 2: two 20 x 20 holes sit side by side, `gap` pixels apart, in a 600 x 600 mask (see
# two_holes below). plan_crops(mask, 256) gives them one shared crop when their context boxes
# overlap. Find the smallest gap at which they get separate crops: first by reasoning from the
# margin rule in section 4, then confirm with plan_crops. Assign it to smallest_gap.
def two_holes(gap):
    holes = np.zeros((600, 600), np.uint8)
    holes[290:310, 200:220] = 1
    holes[290:310, 220 + gap : 240 + gap] = 1
    return holes


# Each box widens by max(16, 0.5 * 20) = 16 px a side, so the boxes stop overlapping at 2 * 16.
smallest_gap = 2 * max(16, round(0.5 * 20))
assert len(plan_crops(two_holes(smallest_gap), 256)) == 2
''',
}
