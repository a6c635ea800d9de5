"""Classic codecs measured live: JPEG, WebP, JPEG 2000, AVIF (Pillow) and HEIC (pillow-heif).

Chapter *Transform coding with learned priors*, section *Evaluation*; applied in the notebook
*Rate-distortion curves of three learned codecs → Classic anchors, measured live*. A learned codec
is always compared with anchors run here, on the same images, next to the published curves.
"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence

import numpy as np
import torch

from ..data import to_uint8
from .curves import RDCurve, mean_curve
from .metrics import image_list, record

#: Default quality sweeps of :func:`classic_anchor`, each covering roughly 0.1–3 bpp on Kodak.
#: JPEG, WebP and AVIF use the settings of ``classic-kodak-pillow.json`` (found by re-measuring
#: it on the 24 images: the means agree to every printed digit). HEIF's quality scale is steeper
#: (that file's sweep reaches 6 bpp), so it gets its own. For JPEG 2000 the numbers are
#: compression ratios (``quality_mode="rates"``): 24 bits per RGB pixel / ratio = the target bpp.
DEFAULT_QUALITIES: dict[str, tuple[float, ...]] = {
    "jpeg": (10, 20, 35, 50, 70, 85, 95),
    "webp": (5, 15, 30, 50, 70, 85, 95),
    "avif": (10, 25, 40, 55, 70, 85, 95),
    "heic": (10, 20, 30, 40, 50, 60, 70),
    "jpeg2000": (240, 120, 60, 40, 24, 16, 8),
}

CLASSIC_CODECS = tuple(DEFAULT_QUALITIES)

def available_codecs() -> dict[str, bool]:
    """Which classic codecs :func:`classic_anchor` can run here (Pillow / pillow-heif builds).

    Used in the notebook *Rate-distortion curves of three learned codecs → Classic anchors, measured
    live*.
    """
    from PIL import features

    try:
        import pillow_heif

        heic = "x265" in pillow_heif.libheif_info().get("encoders", {})
    except ImportError:
        heic = False
    return {"jpeg": features.check("jpg"), "webp": features.check("webp"),
            "jpeg2000": features.check("jpg_2000"), "avif": features.check("avif"), "heic": heic}


def _encode(codec: str, image, quality: float) -> bytes:
    """Encode a PIL RGB image in memory with the codec's library defaults but ``quality``."""
    buf = io.BytesIO()
    if codec == "jpeg":  # libjpeg(-turbo), 4:2:0 chroma subsampling (Pillow's default)
        image.save(buf, format="JPEG", quality=int(quality))
    elif codec == "webp":  # libwebp lossy, method 4
        image.save(buf, format="WEBP", quality=int(quality))
    elif codec == "avif":  # libavif (AOM), 4:2:0, speed 6
        image.save(buf, format="AVIF", quality=int(quality))
    elif codec == "heic":  # libheif + x265 (HEVC intra), 4:2:0
        image.save(buf, format="HEIF", quality=int(quality))
    elif codec == "jpeg2000":  # OpenJPEG, one layer at compression ratio `quality`
        # Pillow's defaults are the lossless set-up (5/3 wavelet, no colour transform): lossy
        # JPEG 2000 wants the 9/7 wavelet and the YCbCr transform (mct=1, ≈3 dB here).
        image.save(buf, format="JPEG2000", quality_mode="rates", quality_layers=[float(quality)],
                   irreversible=True, mct=1)
    else:
        raise ValueError(f"unknown codec {codec!r}; choose one of {', '.join(CLASSIC_CODECS)}")
    return buf.getvalue()


def _decode(data: bytes) -> torch.Tensor:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        a = np.asarray(im.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(a.copy()).permute(2, 0, 1)


def classic_anchor(codec: str, images, qualities: Sequence[float] | None = None,
                   name: str | None = None, with_ms_ssim: bool = True) -> RDCurve:
    """Measure a classic codec live on ``images``: encode to bytes, decode, score.

    ``codec`` is ``"jpeg"``, ``"webp"``, ``"jpeg2000"``, ``"avif"`` (all through Pillow) or
    ``"heic"`` (HEVC intra through pillow-heif and x265). ``qualities`` is the sweep (default
    :data:`DEFAULT_QUALITIES`: Pillow quality 0..100, for JPEG 2000 compression ratios). Each
    ``(3, H, W)`` image (an :class:`nctutor.data.ImageSet` or any sequence of tensors) is rounded
    to 8 bits, encoded in memory with the library's defaults, decoded, and scored: bpp from the
    real bytes, PSNR and MS-SSIM (``nan`` for images under 161 pixels a side; skipped, and the
    curve's ``ms_ssim`` left ``None``, with ``with_ms_ssim=False``) of the decoded image. The
    curve holds the mean over the images at each quality (CompressAI's convention) and
    ``records`` the per-image values.
    Defined in book section *Transform coding with learned priors → Evaluation*.
    Used in the notebook *Rate-distortion curves of three learned codecs → Classic anchors, measured
    live*.
    """
    from PIL import Image

    if codec not in DEFAULT_QUALITIES:
        raise ValueError(f"unknown codec {codec!r}; choose one of {', '.join(CLASSIC_CODECS)}")
    if not available_codecs()[codec]:
        raise RuntimeError(f"codec {codec!r} is not available in this Pillow/pillow-heif build")
    if codec == "heic":
        import pillow_heif

        pillow_heif.register_heif_opener()
    qualities = list(DEFAULT_QUALITIES[codec] if qualities is None else qualities)
    if not qualities:
        raise ValueError("qualities must not be empty")
    records = []
    for img_name, x in image_list(images):
        x8 = to_uint8(x)
        pil = Image.fromarray(x8.permute(1, 2, 0).cpu().numpy(), mode="RGB")
        for q in qualities:
            t0 = time.perf_counter()
            data = _encode(codec, pil, q)
            t1 = time.perf_counter()
            x_hat8 = _decode(data)
            t2 = time.perf_counter()
            records.append(record(img_name, x8, x_hat8, len(data), t1 - t0, t2 - t1,
                                   with_ms_ssim, quality=q))
    from PIL import __version__ as pil_version

    return mean_curve(name or codec.upper(), records, "quality", qualities,
                       f"{codec} measured live with Pillow {pil_version}")
