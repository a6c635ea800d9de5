"""Rate-distortion evaluation: metrics, curves, published and classic anchors, learned codecs.

Chapter *Transform coding with learned priors* (section *Evaluation*), applied in the notebook
*Rate-distortion curves of three learned codecs*. One module per idea:

- :mod:`~nctutor.rd.metrics`: 8-bit RGB PSNR, MS-SSIM, bits per pixel;
- :mod:`~nctutor.rd.curves`: the curve type, Bjøntegaard deltas, CompressAI's JSON, plots;
- :mod:`~nctutor.rd.references`: the published Kodak curves shipped in ``nctutor/reference``;
- :mod:`~nctutor.rd.anchors`: classic codecs measured live with Pillow and pillow-heif;
- :mod:`~nctutor.rd.learned`: learned codecs coded to real files and decoded;
- :mod:`~nctutor.rd.video_anchors`: H.264 and H.265 (x264, x265 through ffmpeg) on video clips.

Their public names are all available here (``rd.bd_rate``, ``rd.evaluate_model``).
"""

from .anchors import CLASSIC_CODECS, DEFAULT_QUALITIES, available_codecs, classic_anchor
from .curves import (
    RDCurve,
    as_curve,
    bd_psnr,
    bd_rate,
    from_compressai_json,
    join,
    load_json,
    mean_curve,
    rd_plot,
    to_compressai_json,
)
from .learned import evaluate_model
from .metrics import (
    MS_SSIM_MIN_SIDE,
    MS_SSIM_TOLERANCE,
    PSNR_TOLERANCE_DB,
    bpp,
    image_list,
    ms_ssim,
    ms_ssim_db,
    psnr,
    record,
)
from .references import CLASSIC_REFERENCE, REFERENCE_DIR, reference_curve, reference_names
from .video_anchors import (
    DEFAULT_CRFS,
    VIDEO_CODECS,
    FFmpegError,
    anchor_curve,
    encode_frames,
    luma,
)

__all__ = [
    "CLASSIC_CODECS", "CLASSIC_REFERENCE", "DEFAULT_CRFS", "DEFAULT_QUALITIES", "FFmpegError",
    "MS_SSIM_MIN_SIDE", "MS_SSIM_TOLERANCE", "PSNR_TOLERANCE_DB", "REFERENCE_DIR", "RDCurve",
    "VIDEO_CODECS", "anchor_curve", "as_curve",
    "available_codecs", "bd_psnr", "bd_rate", "bpp", "classic_anchor", "encode_frames",
    "evaluate_model", "from_compressai_json", "image_list", "join", "load_json", "luma",
    "mean_curve", "ms_ssim", "ms_ssim_db", "psnr", "rd_plot", "record", "reference_curve",
    "reference_names", "to_compressai_json",
]
