"""Paint a mask over a photo and inpaint it: the widget of ``notebooks/08_demo.ipynb``.

Three layers, so that the part that decides the mask is plain Python that tests can drive:

- ``MaskPainter``: pointer events or whole strokes -> (H, W) uint8 0/1 mask, with brush size,
  eraser, undo and clear. No widgets, no browser.
- ``PaintCanvas``: an anywidget (a ``<canvas>`` and ~60 lines of inline JavaScript). The browser
  draws the stroke live and sends it to the kernel once, on pointer-up, as a list of points; the
  kernel paints it with ``MaskPainter`` and sends the mask back as a transparent PNG overlay, so
  what you see is always the kernel's mask (undo and clear included).
- ``InpaintDemo``: the whole tool: photo chooser, ``FileUpload``, brush-size slider, brush/eraser,
  undo, clear, an "Inpaint" button that shows a quick preview beside the input, and a "Full
  resolution" button that fills the photo at its own size.

A phone's photo (12 Mpx and more) stays responsive: the canvas shows it, and takes strokes, at
screen size (``max_side``); "Inpaint" fills that screen-size copy without coarse to fine; only
"Full resolution", on demand, fills the full photo, with the painted mask scaled up to it, coarse
to fine. No stroke ever starts a fill. Measured with the shipped model on one CPU thread, a
2048x1536 photo with two strokes: the preview 1.1 s, the full resolution 6.3 s.

Why anywidget rather than ipycanvas or ipyevents: all three work in JupyterLab, but anywidget had
the fastest stroke round trip measured here (~0.5 s, one message per stroke instead of one per
mouse move), needs no JupyterLab extension beyond the one its pip package ships, and switches on
Colab's custom widget manager by itself; ipycanvas and ipyevents have had Colab breakages. Where a
custom widget cannot load at all (an old front end, a locked-down server), ``InpaintDemo(...,
canvas=False)`` uses only stock ipywidgets: sliders place the brush, buttons paint a dot or a line.

Browsers throttle pointer events (one every ~16 ms), so a fast stroke arrives as points far apart;
``MaskPainter`` joins successive points with thick segments and round caps so the stroke has no gaps.
"""

from __future__ import annotations

import io
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import ipywidgets
import numpy as np
import traitlets
from PIL import Image

from bidsnet_lib.plumbing import (
    DATA_DIR,
    atomic_write,
    check_positive_int,
    got_expected,
    read_photo,
)

try:
    import anywidget
except ImportError:  # no custom widgets: InpaintDemo falls back to stock ipywidgets
    anywidget = None

PHOTO_DIR = DATA_DIR / "images"
OVERLAY_RGBA = (255, 40, 40, 140)  # translucent red: the photo stays visible under the mask
RECORD_ENV = "BIDSNET_WIDGET_RECORD"  # set by tests/test_widget_browser.py for the notebook's kernel


# ----------------------------------------------------------------------------- painting logic
def check_point(point) -> tuple[int, int]:
    """A painted point ``(x, y)`` in image pixels, rounded to ints; finite numbers only."""
    try:
        x, y = (float(v) for v in point)
    except (TypeError, ValueError):
        raise ValueError(got_expected("point", point, "a pair of numbers (x, y)")) from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise ValueError(got_expected("point", point, "finite numbers (x, y)"))
    return round(x), round(y)


class MaskPainter:
    """A (height, width) uint8 0/1 mask (1 = hole) painted by strokes, with an undo stack.

    Points are (x, y) in image pixels (x to the right, y down); points outside the image are
    allowed (the stroke is clipped). `brush_size` is the stroke's diameter in pixels.
    """

    def __init__(self, height: int, width: int, brush_size: int = 24, max_undo: int = 50):
        self.height, self.width = check_positive_int("height", height), check_positive_int("width", width)
        self.brush_size = check_positive_int("brush_size", brush_size)
        self.max_undo = check_positive_int("max_undo", max_undo)
        self.erase = False
        self._mask = np.zeros((self.height, self.width), np.uint8)
        self._undo: list[np.ndarray] = []
        self._points: list[tuple[int, int]] | None = None  # the stroke under way, if any

    @property
    def mask(self) -> np.ndarray:
        """A copy of the mask, (height, width) uint8 0/1."""
        return self._mask.copy()

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    def _push(self) -> None:
        self._undo.append(self._mask.copy())
        del self._undo[: -self.max_undo]

    def stroke(self, points, size: int | None = None, erase: bool | None = None) -> None:
        """Paint (or with `erase`, clear) a polyline through `points`; one undo step."""
        points = [check_point(p) for p in points]
        if not points:
            raise ValueError("points: got none, expected at least one (x, y) point")
        size = self.brush_size if size is None else check_positive_int("size", size)
        value = 0 if (self.erase if erase is None else erase) else 1
        self._push()
        radius = max(size // 2, 0)
        # Segments with round caps between throttled samples, plus a dot on each sample, so a
        # single click or a fast flick paints a continuous stroke.
        for start, end in zip(points, points[1:], strict=False):
            cv2.line(self._mask, start, end, value, thickness=size, lineType=cv2.LINE_8)
        for point in points:
            cv2.circle(self._mask, point, radius, value, thickness=-1, lineType=cv2.LINE_8)

    def pointer_down(self, x, y) -> None:
        """Start a stroke at (x, y) (a browser's pointerdown)."""
        self._points = [check_point((x, y))]

    def pointer_move(self, x, y) -> None:
        """Add (x, y) to the stroke under way; ignored when no button is down (hovering)."""
        if self._points is not None:
            self._points.append(check_point((x, y)))

    def pointer_up(self) -> None:
        """Finish the stroke under way and paint it; nothing happens when none was started."""
        if self._points is not None:
            points, self._points = self._points, None
            self.stroke(points)

    def undo(self) -> bool:
        """Go back one stroke (or clear); False when there is nothing to undo."""
        if not self._undo:
            return False
        self._mask = self._undo.pop()
        return True

    def clear(self) -> None:
        """Empty the mask (undoable)."""
        self._push()
        self._mask[:] = 0


def overlay_png(mask: np.ndarray) -> bytes:
    """The mask as a PNG that is translucent red on holes and transparent elsewhere."""
    rgba = np.zeros((*mask.shape, 4), np.uint8)  # (H, W, 4)
    rgba[mask.astype(bool)] = OVERLAY_RGBA
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    if not ok:
        raise ValueError(f"could not encode a mask of shape {mask.shape} as PNG")
    return data.tobytes()


def encode_image(image: np.ndarray, fmt: str = "png") -> bytes:
    """RGB uint8 (H, W, 3) -> PNG or JPEG bytes."""
    buffer = io.BytesIO()
    if fmt == "jpeg":
        Image.fromarray(image).save(buffer, format="JPEG", quality=92)
    else:
        Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def blend(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The photo with the mask's overlay colour mixed in, as the canvas shows it: (H, W, 3)."""
    alpha = OVERLAY_RGBA[3] / 255
    tinted = (1 - alpha) * image + alpha * np.asarray(OVERLAY_RGBA[:3], np.float32)
    return np.where(mask.astype(bool)[:, :, None], tinted, image).astype(np.uint8)


# ----------------------------------------------------------------------------- the canvas
_ESM = r"""
function render({ model, el }) {
  const canvas = document.createElement("canvas");
  canvas.className = "bidsnet-paint-canvas";
  canvas.style.touchAction = "none";  // a finger paints instead of scrolling
  el.classList.add("bidsnet-paint");
  el.appendChild(canvas);
  const ctx = canvas.getContext("2d");
  const photo = new Image();
  let overlay = new Image(), pending = null, points = null;

  const asUrl = (name) => URL.createObjectURL(new Blob([model.get(name)], { type: "image/png" }));
  function redraw() {
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (photo.complete && photo.naturalWidth) ctx.drawImage(photo, 0, 0);
    if (overlay.complete && overlay.naturalWidth) ctx.drawImage(overlay, 0, 0);
  }
  photo.onload = () => {
    canvas.width = photo.naturalWidth;
    canvas.height = photo.naturalHeight;
    redraw();
  };
  function loadPhoto() {
    if (photo.src) URL.revokeObjectURL(photo.src);
    photo.src = asUrl("photo");
  }
  // The old overlay stays on screen until the new one has decoded: no flicker.
  function loadOverlay() {
    const next = new Image();
    pending = next;
    next.onload = () => {
      if (overlay.src) URL.revokeObjectURL(overlay.src);
      overlay = next;
      if (pending === next) pending = null;
      redraw();
    };
    next.src = asUrl("overlay");
  }
  function setWidth() { canvas.style.width = model.get("display_width") + "px"; }
  loadPhoto();
  loadOverlay();
  setWidth();
  model.on("change:photo", loadPhoto);
  model.on("change:overlay", loadOverlay);
  // Every stroke bumps the revision: redraw wipes the live stroke even if the mask did not change.
  model.on("change:revision", () => { if (!pending) redraw(); });
  model.on("change:display_width", setWidth);

  // Pointer position in image pixels, whatever size the canvas is shown at.
  function at(event) {
    const box = canvas.getBoundingClientRect();
    return [(event.clientX - box.left) * canvas.width / box.width,
            (event.clientY - box.top) * canvas.height / box.height];
  }
  function segment(a, b) {
    ctx.save();
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.lineWidth = model.get("brush_size");
    ctx.strokeStyle = model.get("erase") ? "rgba(255,255,255,0.7)" : "rgba(255,40,40,0.55)";
    ctx.beginPath();
    ctx.moveTo(a[0], a[1]);
    ctx.lineTo(b[0], b[1]);
    ctx.stroke();
    ctx.restore();
  }
  canvas.addEventListener("pointerdown", (event) => {
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    points = [at(event)];
    segment(points[0], points[0]);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!points) return;
    const p = at(event);
    segment(points[points.length - 1], p);
    points.push(p);
  });
  function finish() {
    if (!points) return;
    model.send({ event: "stroke", points, size: model.get("brush_size"), erase: model.get("erase") });
    points = null;
  }
  canvas.addEventListener("pointerup", finish);
  canvas.addEventListener("pointercancel", finish);
  return () => {
    URL.revokeObjectURL(photo.src);
    if (overlay.src) URL.revokeObjectURL(overlay.src);
  };
}
export default { render };
"""

if anywidget is not None:

    class PaintCanvas(anywidget.AnyWidget):
        """A photo on a <canvas> that sends each finished stroke to the kernel as a list of points."""

        _esm = _ESM
        _css = ".bidsnet-paint canvas { max-width: 100%; cursor: crosshair; image-rendering: auto; }"
        photo = traitlets.Bytes(b"").tag(sync=True)  # JPEG or PNG of the photo
        overlay = traitlets.Bytes(b"").tag(sync=True)  # overlay_png of the mask
        brush_size = traitlets.Int(24).tag(sync=True)
        erase = traitlets.Bool(False).tag(sync=True)
        display_width = traitlets.Int(448).tag(sync=True)
        revision = traitlets.Int(0).tag(sync=True)  # bumped by the kernel after every stroke


# ----------------------------------------------------------------------------- photos
def shipped_photos(folder: Path | None = None) -> dict[str, object]:
    """Name -> photo path of the course photos (test set first); skimage's samples when absent.

    The photos live in the repository's ``data/images``; a pip-installed package has none, so
    scikit-image's bundled samples (no download) keep the demo usable anywhere.
    """
    folder = PHOTO_DIR if folder is None else Path(folder)
    paths = [p for split in ("test", "val", "train") for p in sorted(folder.glob(f"{split}/*.jpg"))]
    if paths:
        return {p.stem: p for p in paths}
    from skimage import data

    return {name: getattr(data, name) for name in ("astronaut", "chelsea", "coffee", "rocket")}


def _open_photo(source) -> np.ndarray:
    """A path, a skimage loader, an upload's bytes, a PIL image or an array -> RGB uint8 (H, W, 3)."""
    return read_photo(source() if callable(source) else source, "source").rgb


def _fit_side(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """``rgb`` (H, W, 3) with its longer side shrunk to ``max_side`` (unchanged when it fits)."""
    scale = max_side / max(rgb.shape[:2])
    if scale < 1:
        size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgb)


def canvas_photo(source, max_side: int = 1024) -> np.ndarray:
    """A photo for the canvas: a path, a skimage loader, an upload's bytes, a PIL image or an
    array, opened by :func:`bidsnet_lib.plumbing.read_photo` -> RGB uint8 (H, W, 3), its longer
    side shrunk to ``max_side`` (every stroke redraws the canvas; the inpainter handles any size)."""
    return _fit_side(_open_photo(source), check_positive_int("max_side", max_side))


# ----------------------------------------------------------------------------- the whole tool
class InpaintDemo:
    """Choose or upload a photo, paint a mask, press "Inpaint", see the result beside it.

    `inpainter` is anything with ``inpaint(image, mask) -> (H, W, 3) uint8`` (an
    ``bidsnet_lib.inference.Inpainter``, or a baseline wrapped alike); its ``label`` attribute,
    if any, is shown so that nobody mistakes an untrained model for a trained one. A dict
    ``{name: inpainter}`` adds a "Model" menu (the first is chosen): the same mask filled by
    another model, e.g. the fidelity and the realism checkpoints, or BIDS-Net against PatchMatch. `photos` maps
    names to paths, skimage loaders or arrays (default: ``shipped_photos()``). The photo is kept
    at its own size in ``photo``; the canvas shows ``image``, its longer side shrunk to
    `max_side`, on which the mask is painted. "Inpaint" fills ``image`` as a quick preview
    (``result``; without coarse to fine when the inpainter has it on); "Full resolution"
    (:meth:`inpaint_full`) fills ``photo`` under :attr:`full_mask` the inpainter's own way and
    keeps it in ``full_result``, shown shrunk to the canvas size. `canvas`:
    True = the anywidget canvas, False = the stock-ipywidgets slider fallback, None = the canvas
    when anywidget is installed. `record_dir`, if given, gets a ``state.npz`` (image, mask,
    strokes, result) after every action: the browser test reads what the widget did from there.
    Left None, a canvas demo records to ``$BIDSNET_WIDGET_RECORD`` when that is set (the browser
    test sets it for the notebook's kernel, so the notebook carries no test plumbing).
    """

    def __init__(self, inpainter, photos=None, *, canvas: bool | None = None, brush_size: int = 24,
                 max_side: int = 1024, display_width: int = 448, record_dir=None):
        self.inpainters = dict(inpainter) if isinstance(inpainter, dict) else {"": inpainter}
        if not self.inpainters:
            raise ValueError("inpainter: got an empty dict, expected {name: inpainter} with at least one")
        for name, each in self.inpainters.items():
            if not callable(getattr(each, "inpaint", None)):
                where = f"[{name!r}]" if name else ""
                raise TypeError(f"inpainter{where}: got {type(each).__name__}, expected an object with an "
                                "inpaint(image, mask) method")
        self.inpainter = next(iter(self.inpainters.values()))
        self.photos = shipped_photos() if photos is None else dict(photos)
        if not self.photos:
            raise ValueError("photos: got none, expected at least one photo")
        self.canvas_mode = anywidget is not None if canvas is None else bool(canvas)
        if self.canvas_mode and anywidget is None:
            raise ValueError("canvas=True needs the anywidget package; pip install anywidget or pass canvas=False")
        self.max_side = check_positive_int("max_side", max_side)
        self.display_width = check_positive_int("display_width", display_width)
        if record_dir is None and self.canvas_mode:
            record_dir = os.environ.get(RECORD_ENV)
        self.record_dir = Path(record_dir) if record_dir else None
        self.result: np.ndarray | None = None
        self.full_result: np.ndarray | None = None
        self.strokes = 0
        self._build(check_positive_int("brush_size", brush_size))
        self.set_image(next(iter(self.photos.values())))

    # -- state
    @property
    def mask(self) -> np.ndarray:
        """The painted mask at the canvas's size, (h, w) uint8 0/1 with 1 = hole."""
        return self.painter.mask

    @property
    def full_mask(self) -> np.ndarray:
        """The painted mask scaled up to the photo's own size, (H, W) uint8 0/1: nearest
        neighbour, so every photo pixel under a painted canvas pixel is a hole, and no other."""
        height, width = self.photo.shape[:2]
        return cv2.resize(self.painter.mask, (width, height), interpolation=cv2.INTER_NEAREST)

    def set_image(self, image) -> None:
        """Show a new photo (any form :func:`canvas_photo` takes) with an empty mask."""
        self.photo = _open_photo(image)  # (H, W, 3), its own size: what "Full resolution" fills
        self.image = _fit_side(self.photo, self.max_side)  # (h, w, 3), what the canvas shows
        height, width = self.image.shape[:2]
        self.painter = MaskPainter(height, width, brush_size=self.size.value)
        self.painter.erase = self.mode.value == "eraser"
        self.result = self.full_result = None
        self.strokes = 0
        self.output.value = encode_image(np.full_like(self.image, 235))  # blank until inpainted
        if self.canvas_mode:
            self.canvas.photo = encode_image(self.image, "jpeg")
        else:
            self.x.max, self.y.max = width - 1, height - 1
            self.x.value, self.y.value = width // 2, height // 2
            self._last = None
        shown = "" if self.photo.shape == self.image.shape else f", shown at {width}x{height}"
        self._refresh(f"{self.photo.shape[1]}x{self.photo.shape[0]} photo{shown}: paint over what should go, "
                      "then press Inpaint (a quick preview) or Full resolution")

    def stroke(self, points, size: int | None = None, erase: bool | None = None) -> None:
        """Paint one stroke as if drawn on the canvas (used by the canvas and by scripts)."""
        self.painter.stroke(points, size, erase)
        self.strokes += 1
        self.full_result = None  # it filled another mask: "demo.full_result holds it" no longer holds
        self._refresh()

    def inpaint(self) -> np.ndarray:
        """The quick preview: the canvas-size photo inpainted under the painted mask, without coarse
        to fine; shown, and returned (h, w, 3) uint8."""
        start = time.perf_counter()
        # An Inpainter that fills coarse to fine takes the thumbnail path for this call only.
        quick = {"coarse_to_fine": False} if getattr(self.inpainter, "coarse_to_fine", False) else {}
        self.result = self.inpainter.inpaint(self.image, self.mask, **quick)
        self.output.value = encode_image(self.result)
        self._refresh(f"preview: inpainted {100 * self.mask.mean():.1f} % of the photo in "
                      f"{time.perf_counter() - start:.2f} s")
        return self.result

    def inpaint_full(self) -> np.ndarray:
        """The photo at its own size inpainted under :attr:`full_mask`, the inpainter's own way
        (coarse to fine for a checkpoint with a residual head): kept in ``full_result`` (save it
        with ``PIL.Image.fromarray(demo.full_result).save(...)``), shown shrunk; (H, W, 3) uint8."""
        height, width = self.photo.shape[:2]
        self.status.value = f"filling the {width}x{height} photo at full resolution ..."
        self.full_button.disabled = True  # one fill at a time
        start = time.perf_counter()
        try:
            self.full_result = self.inpainter.inpaint(self.photo, self.full_mask)
        finally:
            self.full_button.disabled = False
        self.output.value = encode_image(_fit_side(self.full_result, self.max_side))
        self._refresh(f"full resolution: {width}x{height} inpainted in {time.perf_counter() - start:.1f} s; "
                      "demo.full_result holds it")
        return self.full_result

    # -- widgets
    def choose_model(self, name: str) -> None:
        """Fill with the inpainter ``name`` of the dict given (the mask stays; results are cleared)."""
        if name not in self.inpainters or not name:
            raise ValueError(f"model: got {name!r}, expected one of {[n for n in self.inpainters if n]}")
        self.inpainter = self.inpainters[name]
        self.title.value = self._title()
        self.result = self.full_result = None
        self._refresh(f"model: {name}; press Inpaint or Full resolution")

    def _title(self) -> str:
        return f"<b>Model:</b> {getattr(self.inpainter, 'label', type(self.inpainter).__name__)}"

    def _build(self, brush_size: int) -> None:
        self.title = ipywidgets.HTML(self._title())
        named = [n for n in self.inpainters if n]
        self.model_menu = ipywidgets.Dropdown(options=named, description="Model") if named else None
        self.choose = ipywidgets.Dropdown(options=list(self.photos), description="Photo")
        self.upload = ipywidgets.FileUpload(accept="image/*", multiple=False, description="Upload")
        self.size = ipywidgets.IntSlider(brush_size, min=2, max=128, description="Brush")
        self.mode = ipywidgets.ToggleButtons(options=["brush", "eraser"], value="brush")
        self.undo_button = ipywidgets.Button(description="Undo", icon="undo")
        self.clear_button = ipywidgets.Button(description="Clear", icon="trash")
        self.run_button = ipywidgets.Button(description="Inpaint", button_style="primary", icon="magic",
                                            tooltip="a quick preview at the canvas's size")
        self.full_button = ipywidgets.Button(description="Full resolution", icon="expand",
                                             tooltip="the photo at its own size, coarse to fine: slower")
        self.status = ipywidgets.Label()
        layout = ipywidgets.Layout(width=f"{self.display_width}px")
        self.output = ipywidgets.Image(format="png", layout=layout)
        if self.canvas_mode:
            self.canvas = PaintCanvas(brush_size=brush_size, display_width=self.display_width)
            self.canvas.on_msg(self._on_canvas_message)
            traitlets.link((self.size, "value"), (self.canvas, "brush_size"))
            picture = self.canvas
            place = []
        else:
            self.preview = ipywidgets.Image(format="png", layout=layout)
            self.x = ipywidgets.IntSlider(0, min=0, description="x")
            self.y = ipywidgets.IntSlider(0, min=0, description="y")
            self.dot_button = ipywidgets.Button(description="Dot here")
            self.line_button = ipywidgets.Button(description="Line to here")
            self.dot_button.on_click(lambda _: self._place(line=False))
            self.line_button.on_click(lambda _: self._place(line=True))
            for slider in (self.x, self.y):
                slider.observe(lambda _: self._refresh(), "value")
            picture = self.preview
            place = [ipywidgets.HBox([self.x, self.y, self.dot_button, self.line_button])]
        self.size.observe(self._on_size, "value")
        self.mode.observe(self._on_mode, "value")
        self.choose.observe(self._on_choose, "value")
        if self.model_menu is not None:
            self.model_menu.observe(lambda change: self.choose_model(change["new"]), "value")
        self.upload.observe(self._on_upload, "value")
        self.undo_button.on_click(lambda _: self._on_undo())
        self.clear_button.on_click(lambda _: self._on_clear())
        self.run_button.on_click(lambda _: self._on_fill(self.inpaint))
        self.full_button.on_click(lambda _: self._on_fill(self.inpaint_full))
        self.widget = ipywidgets.VBox([
            self.title,
            ipywidgets.HBox([self.choose, self.upload, *([self.model_menu] if self.model_menu else [])]),
            ipywidgets.HBox([self.size, self.mode]),
            *place,
            ipywidgets.HBox([self.undo_button, self.clear_button, self.run_button, self.full_button]),
            ipywidgets.HBox([picture, self.output]),
            self.status,
        ])

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def _refresh(self, message: str | None = None) -> None:
        mask = self.painter.mask
        if self.canvas_mode:
            with self.canvas.hold_sync():  # one message: the browser sees both changes at once
                self.canvas.overlay = overlay_png(mask)
                self.canvas.revision += 1
        else:
            shown = blend(self.image, mask)
            # A crosshair at the slider position, in the brush's size, shows where a dot will go.
            cv2.circle(shown, (self.x.value, self.y.value), max(self.size.value // 2, 1), (0, 160, 255), 2)
            self.preview.value = encode_image(shown)
        self.status.value = message or f"{self.strokes} strokes, {100 * mask.mean():.1f} % masked"
        self._record()

    def _record(self) -> None:
        if self.record_dir is None:
            return
        self.record_dir.mkdir(parents=True, exist_ok=True)
        result = self.result if self.result is not None else np.zeros((0, 0, 3), np.uint8)
        atomic_write(self.record_dir / "state.npz",  # readers never see a half-written file
                     lambda stream: np.savez(stream, image=self.image, mask=self.painter.mask,
                                             strokes=self.strokes, result=result))

    # -- callbacks (exceptions here would vanish into the widget log, so they go to the status line)
    def _on_canvas_message(self, _widget, content, _buffers) -> None:
        if content.get("event") == "stroke":
            try:
                self.stroke(content["points"], int(content["size"]), bool(content["erase"]))
            except (KeyError, TypeError, ValueError) as err:
                self.status.value = f"stroke ignored: {err}"

    def _place(self, line: bool) -> None:
        here = (self.x.value, self.y.value)
        self.stroke([self._last, here] if line and self._last is not None else [here])
        self._last = here

    def _on_size(self, change) -> None:
        self.painter.brush_size = change["new"]
        if not self.canvas_mode:
            self._refresh()

    def _on_mode(self, change) -> None:
        self.painter.erase = change["new"] == "eraser"
        if self.canvas_mode:
            self.canvas.erase = self.painter.erase

    def _on_fill(self, fill: Callable[[], np.ndarray]) -> None:
        # Any failure of the model (a photo too large for memory, a broken checkpoint) would
        # otherwise vanish into the widget log while the buttons look as if nothing happened.
        try:
            fill()
        except Exception as err:  # noqa: BLE001 - shown to the person who pressed the button
            self.status.value = f"inpainting failed: {type(err).__name__}: {err}"

    def _on_undo(self) -> None:
        undone = self.painter.undo()
        if undone:
            self.full_result = None
        self._refresh(None if undone else "nothing to undo")

    def _on_clear(self) -> None:
        self.painter.clear()
        self.full_result = None
        self._refresh()

    def _on_choose(self, change) -> None:
        try:
            self.set_image(self.photos[change["new"]])
        except (OSError, ValueError) as err:
            self.status.value = f"could not open {change['new']}: {err}"

    def _on_upload(self, change) -> None:
        if not change["new"]:
            return
        upload = change["new"][0]
        try:
            self.set_image(upload["content"])
        except (OSError, ValueError) as err:
            self.status.value = f"could not open {upload.get('name', 'the upload')}: {err}"
