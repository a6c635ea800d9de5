"""Published Kodak curves shipped with nctutor (``nctutor/reference``, see its README.md).

Chapter *Transform coding with learned priors*, section *Evaluation*: CompressAI's published
results of its pretrained models, the classic codecs it lists (JPEG, WebP, JPEG 2000, BPG, HM,
VTM, AV1), and the classic codecs measured with Pillow on the 24 Kodak images.
"""

from __future__ import annotations

import json
from pathlib import Path

from .curves import RDCurve, from_compressai_json

#: Where the packaged reference curves live (JSON files, see its README.md).
REFERENCE_DIR = Path(__file__).parent.parent / "reference"

#: The file of classic codecs measured with Pillow on the 24 Kodak images (mean bpp, mean PSNR).
CLASSIC_REFERENCE = "classic-kodak-pillow"


def reference_names() -> list[str]:
    """Names accepted by :func:`reference_curve`: the packaged CompressAI Kodak results
    (``"jpeg"``, ``"compressai-mbt2018-mean_mse_cpu"``, …) and the live-measured classic codecs
    ``"classic-kodak-pillow/<codec>"``.
    Lists the published curves of book section *Transform coding with learned priors →
    Evaluation*; no page calls it.
    """
    names = sorted(p.stem for p in REFERENCE_DIR.glob("*.json") if p.stem != CLASSIC_REFERENCE)
    classic = json.loads((REFERENCE_DIR / f"{CLASSIC_REFERENCE}.json").read_text())
    return names + [f"{CLASSIC_REFERENCE}/{codec}" for codec in classic]


def reference_curve(name: str) -> RDCurve:
    """A published Kodak curve shipped with nctutor (mean bpp, RGB PSNR, MS-SSIM per point).

    ``name`` is one of :func:`reference_names`, e.g. ``"compressai-mbt2018-mean_mse_cpu"``
    (CompressAI's pretrained mean-scale hyperprior, MSE-trained, decoded on CPU), ``"vtm"`` or
    ``"classic-kodak-pillow/jpeg"``. CompressAI's files read
    ``{"name", "description", "results": {"bpp", "psnr-rgb", "ms-ssim-rgb", …}}``.
    Defined in book section *Transform coding with learned priors → Evaluation*.
    Used in the notebook *Rate-distortion curves of three learned codecs → Published curves*.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, not {type(name).__name__}")
    key = name.removesuffix(".json")
    if key.startswith(CLASSIC_REFERENCE + "/"):
        codec = key.split("/", 1)[1]
        table = json.loads((REFERENCE_DIR / f"{CLASSIC_REFERENCE}.json").read_text())
        if codec not in table:
            raise ValueError(f"unknown reference {name!r}; known: {', '.join(reference_names())}")
        return from_compressai_json(
            {"name": f"{codec.upper()} (Pillow, Kodak)", "results": table[codec],
             "description": "classic-kodak-pillow.json: Pillow 13.0.0, pillow-heif 1.8.1"})
    file = REFERENCE_DIR / f"{key}.json"
    if "/" in key or not file.is_file():
        raise ValueError(f"unknown reference {name!r}; known: {', '.join(reference_names())}")
    return from_compressai_json(json.loads(file.read_text()), key)
