"""bidsnet_lib.widgets: the painting logic driven by synthetic pointer events, and the widget tool."""

import datetime
import io

import cv2
import numpy as np
import pytest
from PIL import Image

from bidsnet_lib.widgets import (
    InpaintDemo,
    MaskPainter,
    blend,
    canvas_photo,
    overlay_png,
    shipped_photos,
)


def distance_to_segment(height, width, a, b) -> np.ndarray:
    """Distance of every pixel centre to the segment a-b, (height, width)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(float)
    (ax, ay), (bx, by) = a, b
    dx, dy = bx - ax, by - ay
    t = np.clip(((xx - ax) * dx + (yy - ay) * dy) / max(dx * dx + dy * dy, 1e-9), 0, 1)
    return np.hypot(xx - (ax + t * dx), yy - (ay + t * dy))


# ----------------------------------------------------------------------------- MaskPainter
def test_throttled_pointer_events_paint_a_gapless_stroke():
    painter = MaskPainter(100, 200, brush_size=10)
    # A fast drag: the browser delivered only three samples, 90 px apart.
    painter.pointer_down(10, 50)
    painter.pointer_move(100, 50)
    painter.pointer_move(190, 80)
    assert not painter.mask.any(), "nothing is painted before pointer-up"
    painter.pointer_up()
    mask = painter.mask
    near = np.minimum(distance_to_segment(100, 200, (10, 50), (100, 50)),
                      distance_to_segment(100, 200, (100, 50), (190, 80)))
    assert mask[near <= 3.5].all(), "gaps along the stroke"
    assert not mask[near >= 6.5].any(), "paint beyond the brush radius"
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1}


def test_a_click_paints_a_round_dot_of_the_brush_size():
    painter = MaskPainter(64, 64, brush_size=20)
    painter.pointer_down(32, 32)
    painter.pointer_up()
    disk = np.hypot(*np.mgrid[-32:32, -32:32]) <= 10
    assert abs(int(painter.mask.sum()) - int(disk.sum())) < 0.1 * disk.sum()
    assert painter.mask[32, 32] == 1 and painter.mask[32, 32 + 12] == 0


def test_hover_and_stray_pointer_up_paint_nothing():
    painter = MaskPainter(32, 32)
    painter.pointer_move(5, 5)
    painter.pointer_up()
    assert not painter.mask.any() and not painter.can_undo


def test_eraser_undo_and_clear():
    painter = MaskPainter(50, 50, brush_size=8)
    painter.stroke([(5, 25), (45, 25)])
    painted = painter.mask
    painter.erase = True
    painter.stroke([(25, 0), (25, 49)])
    erased = painter.mask
    assert erased[25, 25] == 0 and erased[25, 5] == 1 and erased.sum() < painted.sum()
    painter.clear()
    assert not painter.mask.any()
    assert painter.undo()
    np.testing.assert_array_equal(painter.mask, erased)
    assert painter.undo()
    np.testing.assert_array_equal(painter.mask, painted)
    assert painter.undo() and not painter.mask.any()
    assert not painter.undo(), "nothing left to undo"


def test_stroke_arguments_override_the_painter_settings():
    painter = MaskPainter(40, 40, brush_size=2)
    painter.stroke([(20, 20)], size=16)
    assert painter.mask[20, 27] == 1
    painter.stroke([(20, 20)], size=4, erase=True)
    assert painter.mask[20, 20] == 0 and painter.mask[20, 27] == 1


def test_undo_stack_is_capped():
    painter = MaskPainter(20, 20, max_undo=3)
    for x in range(6):
        painter.stroke([(x * 3, 10)])
    assert sum(painter.undo() for _ in range(10)) == 3


def test_points_outside_the_image_are_clipped():
    painter = MaskPainter(20, 30, brush_size=4)
    painter.stroke([(-50, 10), (80, 10)])
    assert painter.mask[10].all()


def test_bad_strokes_are_refused():
    painter = MaskPainter(20, 20)
    with pytest.raises(ValueError, match="at least one"):
        painter.stroke([])
    with pytest.raises(ValueError, match="finite"):
        painter.stroke([(float("nan"), 3)])
    with pytest.raises(ValueError, match=r"point: got 'ab', expected a pair of numbers \(x, y\)"):
        painter.stroke(["ab"])
    with pytest.raises(ValueError, match="size: got 0, expected a positive int"):
        painter.stroke([(1, 1)], size=0)
    with pytest.raises(ValueError, match="height: got 0, expected a positive int"):
        MaskPainter(0, 5)


def test_overlay_is_transparent_outside_the_mask():
    mask = np.zeros((6, 8), np.uint8)
    mask[2:4, 3:6] = 1
    rgba = np.asarray(Image.open(io.BytesIO(overlay_png(mask))))
    assert rgba.shape == (6, 8, 4)
    np.testing.assert_array_equal(rgba[:, :, 3] > 0, mask.astype(bool))
    image = np.full((6, 8, 3), 50, np.uint8)
    shown = blend(image, mask)
    np.testing.assert_array_equal(shown[mask == 0], image[mask == 0])
    assert (shown[mask == 1, 0] > 50).all()


# ----------------------------------------------------------------------------- photos
def test_shipped_photos_fall_back_to_skimage(tmp_path):
    photos = shipped_photos(tmp_path)
    assert "astronaut" in photos
    assert canvas_photo(photos["astronaut"], max_side=100).shape == (100, 100, 3)


def test_read_photo_accepts_uploaded_bytes():
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((30, 60, 3), np.uint8)).save(buffer, format="PNG")
    assert canvas_photo(memoryview(buffer.getvalue()), max_side=20).shape == (10, 20, 3)
    with pytest.raises(ValueError, match="not an image"):
        canvas_photo(b"plain text")


# ----------------------------------------------------------------------------- InpaintDemo
class GreyFill:
    """A stand-in inpainter: holes become grey, known pixels stay."""

    label = "grey fill (test)"

    def inpaint(self, image, mask):
        out = image.copy()
        out[mask.astype(bool)] = 128
        return out


def photos():
    rng = np.random.default_rng(0)
    return {"noise": rng.integers(0, 100, (60, 80, 3), dtype=np.uint8),
            "flat": np.full((40, 50, 3), 30, np.uint8)}


@pytest.mark.parametrize("canvas", [True, False], ids=["anywidget", "sliders"])
def test_demo_paints_undoes_and_inpaints(canvas, tmp_path):
    demo = InpaintDemo(GreyFill(), photos(), canvas=canvas, brush_size=6, record_dir=tmp_path)
    assert "grey fill (test)" in demo.title.value
    if canvas:
        # What the browser sends on pointer-up.
        demo._on_canvas_message(demo.canvas, {"event": "stroke", "points": [[10, 30], [70, 30]],
                                              "size": 6, "erase": False}, [])
        assert demo.canvas.overlay == overlay_png(demo.mask)
        demo.size.value = 11
        assert demo.canvas.brush_size == 11 and demo.painter.brush_size == 11
    else:
        demo.x.value, demo.y.value = 10, 30
        demo.dot_button.click()
        demo.x.value = 70
        demo.line_button.click()
    assert demo.mask[30, 10:71].all() and demo.mask.sum() < 0.3 * demo.mask.size
    state = np.load(tmp_path / "state.npz")
    np.testing.assert_array_equal(state["mask"], demo.mask)
    demo.run_button.click()
    holes = demo.mask.astype(bool)
    np.testing.assert_array_equal(demo.result[~holes], demo.image[~holes])
    assert (demo.result[holes] == 128).all()
    state = np.load(tmp_path / "state.npz")
    np.testing.assert_array_equal(state["result"], demo.result)
    demo.clear_button.click()
    assert not demo.mask.any()
    demo.undo_button.click()
    assert demo.mask[30, 40] == 1
    demo.mode.value = "eraser"
    demo.stroke([(40, 30)], size=20)
    assert demo.mask[30, 40] == 0
    demo.undo_button.click()
    assert demo.mask[30, 40] == 1


def test_demo_photo_choice_and_upload_reset_the_mask():
    demo = InpaintDemo(GreyFill(), photos(), canvas=True)
    demo.stroke([(5, 5)])
    demo.choose.value = "flat"
    assert demo.image.shape == (40, 50, 3) and not demo.mask.any()
    buffer = io.BytesIO()
    Image.fromarray(np.full((300, 200, 3), 9, np.uint8)).save(buffer, format="JPEG")
    demo.max_side = 150
    demo.upload.value = ({"name": "mine.jpg", "type": "image/jpeg", "size": len(buffer.getvalue()),
                          "content": memoryview(buffer.getvalue()), "last_modified": datetime.datetime(2024, 1, 1)},)
    assert demo.image.shape == (150, 100, 3) and demo.mask.shape == (150, 100)
    demo.upload.value = ({"name": "bad.jpg", "type": "image/jpeg", "size": 4,
                          "content": memoryview(b"nope"), "last_modified": datetime.datetime(2024, 1, 1)},)
    assert "could not open bad.jpg" in demo.status.value and demo.image.shape == (150, 100, 3)


def test_a_bad_canvas_message_goes_to_the_status_line():
    demo = InpaintDemo(GreyFill(), photos(), canvas=True)
    demo._on_canvas_message(demo.canvas, {"event": "stroke", "points": [], "size": 5, "erase": False}, [])
    assert "stroke ignored" in demo.status.value and not demo.mask.any()


def test_demo_arguments_are_checked():
    with pytest.raises(TypeError, match="inpainter: got object, expected an object with an inpaint"):
        InpaintDemo(object(), photos())
    with pytest.raises(ValueError, match="photos: got none, expected at least one photo"):
        InpaintDemo(GreyFill(), {})


def test_demo_mask_matches_an_opencv_reference_stroke():
    demo = InpaintDemo(GreyFill(), photos(), canvas=True, brush_size=9)
    demo.stroke([(10, 10), (60, 40)])
    reference = np.zeros((60, 80), np.uint8)
    cv2.line(reference, (10, 10), (60, 40), 1, thickness=9)
    assert (demo.mask >= reference).all()  # the stroke covers at least OpenCV's own thick line


def test_demo_records_to_the_environment_folder_only_for_the_canvas(tmp_path, monkeypatch):
    from bidsnet_lib import widgets

    monkeypatch.setenv(widgets.RECORD_ENV, str(tmp_path / "record"))
    assert InpaintDemo(GreyFill(), photos(), canvas=True).record_dir == tmp_path / "record"
    assert InpaintDemo(GreyFill(), photos(), canvas=False).record_dir is None  # the fallback never overwrites it
    assert InpaintDemo(GreyFill(), photos(), canvas=True, record_dir=tmp_path / "x").record_dir == tmp_path / "x"
    monkeypatch.delenv(widgets.RECORD_ENV)
    assert InpaintDemo(GreyFill(), photos(), canvas=True).record_dir is None


class Recorder(GreyFill):
    """A stand-in inpainter that fills coarse to fine (it says so) and records each call."""

    coarse_to_fine = True

    def __init__(self):
        self.calls = []

    def inpaint(self, image, mask, **options):
        self.calls.append((image.shape, mask.shape, options))
        return super().inpaint(image, mask)


def test_a_phone_photo_is_painted_and_previewed_at_screen_size_and_filled_in_full_on_demand():
    rng = np.random.default_rng(1)
    phone = rng.integers(0, 100, (3024, 4032, 3), dtype=np.uint8)  # a 12-Mpx photo
    recorder = Recorder()
    demo = InpaintDemo(recorder, {"phone": phone}, canvas=True, max_side=1008, brush_size=10)
    assert demo.image.shape == (756, 1008, 3) and demo.photo.shape == phone.shape  # exactly 4x
    assert "4032x3024 photo, shown at 1008x756" in demo.status.value
    demo._on_canvas_message(demo.canvas, {"event": "stroke", "points": [[100, 300], [700, 400]],
                                          "size": 10, "erase": False}, [])
    demo.stroke([(500, 100)], size=30)
    assert not recorder.calls, "a stroke never starts a fill"
    demo.run_button.click()  # the preview: the screen-size copy, the thumbnail path
    assert recorder.calls == [((756, 1008, 3), (756, 1008), {"coarse_to_fine": False})]
    assert demo.result.shape == demo.image.shape and demo.full_result is None
    demo.full_button.click()  # the photo at its own size, the inpainter's own way
    assert recorder.calls[1] == ((3024, 4032, 3), (3024, 4032), {})
    # The drawn mask scaled up by nearest neighbour: each painted canvas pixel a 4 x 4 hole, no more.
    np.testing.assert_array_equal(demo.full_mask, np.kron(demo.mask, np.ones((4, 4), np.uint8)))
    holes = demo.full_mask.astype(bool)
    assert demo.full_result.shape == phone.shape and (demo.full_result[holes] == 128).all()
    np.testing.assert_array_equal(demo.full_result[~holes], phone[~holes])
    shown = np.asarray(Image.open(io.BytesIO(demo.output.value)))
    assert shown.shape == demo.image.shape and not demo.full_button.disabled  # shown shrunk; ready again
    assert "full resolution: 4032x3024" in demo.status.value
    demo.set_image(phone[:100, :80])  # a new photo resets both results
    assert demo.photo.shape == demo.image.shape == (100, 80, 3) and demo.full_result is None


def test_the_preview_asks_nothing_of_an_inpainter_without_coarse_to_fine():
    demo = InpaintDemo(GreyFill(), photos(), canvas=False)  # GreyFill.inpaint takes no options
    demo.stroke([(20, 20)])
    demo.run_button.click()
    demo.full_button.click()
    np.testing.assert_array_equal(demo.full_result, demo.result)  # a photo that fits: one size


def test_a_changed_mask_forgets_the_full_result_and_a_failed_fill_says_why():
    demo = InpaintDemo(GreyFill(), photos(), canvas=True)
    for change in (lambda: demo.stroke([(30, 30)]), demo.undo_button.click, demo.clear_button.click):
        demo.stroke([(10, 10)])
        demo.full_button.click()
        assert demo.full_result is not None
        change()
        assert demo.full_result is None, "full_result would claim to fill a mask it did not"

    class Broken(GreyFill):
        def inpaint(self, image, mask):
            raise MemoryError("a 50-Mpx photo")

    demo = InpaintDemo(Broken(), photos(), canvas=True)
    demo.stroke([(10, 10)])
    for button in (demo.run_button, demo.full_button):
        button.click()  # raises nothing: a callback's exception would vanish into the widget log
        assert demo.status.value == "inpainting failed: MemoryError: a 50-Mpx photo"
    assert not demo.full_button.disabled and demo.result is None


def test_a_model_menu_fills_the_same_mask_with_another_model():
    class Black(GreyFill):
        label = "black fill (test)"

        def inpaint(self, image, mask):
            out = image.copy()
            out[mask.astype(bool)] = 0
            return out

    demo = InpaintDemo({"grey": GreyFill(), "black": Black()}, photos(), canvas=True)
    assert demo.model_menu.options == ("grey", "black") and "grey fill (test)" in demo.title.value
    demo.stroke([(30, 30)], size=9)
    demo.run_button.click()
    holes = demo.mask.astype(bool)
    assert (demo.result[holes] == 128).all()
    demo.model_menu.value = "black"
    assert "black fill (test)" in demo.title.value and demo.result is None and demo.mask[30, 30] == 1
    demo.run_button.click()
    assert (demo.result[holes] == 0).all()
    with pytest.raises(ValueError, match=r"model: got 'white', expected one of \['grey', 'black'\]"):
        demo.choose_model("white")
    assert InpaintDemo(GreyFill(), photos()).model_menu is None  # one inpainter: no menu
    with pytest.raises(TypeError, match=r"inpainter\['bad'\]: got object"):
        InpaintDemo({"grey": GreyFill(), "bad": object()}, photos())
    with pytest.raises(ValueError, match="empty dict"):
        InpaintDemo({}, photos())
