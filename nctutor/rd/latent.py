"""The latent-properties paper's tables on the shipped codecs, from one run with real files.

Defined in book section *Lattices and the latent shift on a trained codec → How the tables are
made*. :func:`run` codes every image with every mode of :class:`nctutor.codecs.latent.LatentCodec`
to real ``.nct`` files (:func:`nctutor.container.encode_image`), decodes them, and measures what
Tables 1 and 3-6 and Figs. 4c and 6 of Balcilar et al. need; :func:`tables` turns the record into
BD-rates and BD-PSNRs. The record is a JSON file (the shipped one:
:data:`RECORD`, made by ``nctutor latent-eval``; the command is stored in it).

Per family, quality and image the record holds:

- ``modes``: for each mode of :data:`MODES`, the file's ``bytes``, the 8-bit RGB ``psnr``, the
  encode and decode seconds, the shift steps, and ``latent_mse`` (``mean((ŷ − y)²)`` before any
  shift: Table 5's SNR);
- ``analysis`` (scalar quantization, no file): the correlation of the main rate gradient with
  the true distortion gradient (Fig. 6) and, for the hyperprior, of the two side gradients; the
  PSNR after the best continuous step along the proxy gradient (``latent``), the *true*
  distortion gradient (``true``, Table 3), a constant, the sign of ``ŷ − μ`` and the best of
  :data:`RANDOM_SEEDS` Gaussian directions (``constant``, ``sign``, ``random``: Table 4); for
  the hyperprior the estimated bits of ``ŷ`` after the side shift along the proxy and the true
  side gradient (Table 3).

A continuous step is found as the encoder's ``secant`` search does (two decodes, the parabola's
minimum) and checked with a third decode; a step that does not help counts as 0, and its
signalling cost is ignored, as in Tables 3 and 4 of the paper.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import time
from collections.abc import Sequence
from importlib.resources import files

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import codecs
from ..codecs.latent import LatentCodec, side_gradient
from ..config import machine_info
from ..container import decode_image, encode_image, read_header
from ..files import atomic_write
from .curves import bd_psnr, bd_rate
from .metrics import bpp, psnr

__all__ = ["MODES", "RANDOM_SEEDS", "RECORD", "analyse", "gradient_correlation", "load_record",
           "run", "tables"]

#: mode → (coder, quantizer, shift, search). ``compressai``: CompressAI's own table coder.
MODES: dict[str, tuple[str, str, bool, str]] = {
    "compressai": ("table", "scalar", False, "none"),
    "scalar": ("lattice", "scalar", False, "none"),
    "hex": ("lattice", "hex", False, "none"),
    "oct": ("lattice", "oct", False, "none"),
    "shift": ("lattice", "scalar", True, "secant"),
    "shift-brute": ("lattice", "scalar", True, "brute"),
    "hex+shift": ("lattice", "hex", True, "secant"),
    "oct+shift": ("lattice", "oct", True, "secant"),
}
RANDOM_SEEDS = 4
#: The record shipped with the package (Kodak, the shipped ``cpu`` weights).
RECORD = files("nctutor") / "weights" / "latent-kodak.json"


def _corr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(np.corrcoef(a.flatten().double().numpy(), b.flatten().double().numpy())[0, 1])


def _decode_psnr(codec: LatentCodec, x: torch.Tensor, y_hat: torch.Tensor) -> float:
    h, w = x.shape[-2:]
    return psnr(x[0], codec.synthesize(y_hat)[0, :, :h, :w])


def _best_step(codec: LatentCodec, x: torch.Tensor, y_hat: torch.Tensor, d: torch.Tensor,
               x0: torch.Tensor, base: float) -> float:
    """PSNR after the best continuous step along ``d`` (the secant search, checked)."""
    h, w = x.shape[-2:]
    rms = float(d.pow(2).mean().sqrt())
    if rms == 0:
        return base
    eps = 0.01 / rms
    x1 = codec.synthesize(y_hat + eps * d)[..., :h, :w]
    delta = x1 - x0
    rho = eps * float(((x - x0) * delta).sum() / delta.pow(2).sum().clamp_min(1e-20))
    return max(base, _decode_psnr(codec, x, y_hat + rho * d))


@torch.no_grad()
def analyse(model: torch.nn.Module, x: torch.Tensor) -> dict:
    """The ``analysis`` entry of one image (see the module docstring); ``x`` is ``(3, H, W)``.
    Defined in book section *Lattices and the latent shift on a trained codec → How the tables
    are made*.
    """
    codec = LatentCodec(model, "scalar")
    h, w = x.shape[-2:]
    arch = codecs.architecture_of_model(model)
    xp = codecs.pad(x[None], codecs.STRIDES[arch])
    x = x[None]
    y = model.g_a(xp)
    out: dict = {}
    if codec.hyper:
        z = model.h_a(y)
        z_hat = model.entropy_bottleneck.decompress(model.entropy_bottleneck.compress(z),
                                                    z.shape[-2:])
        means, scales, ids = codec.params(z_hat, y.shape)
    else:
        means, scales, ids = codec.params(None, y.shape)
    for q in ("scalar", "hex", "oct"):
        y_q = LatentCodec(model, q).quantize(y, means, ids)[0]
        out[f"latent_mse_{q}"] = float((y_q - y).pow(2).mean())
    y_hat = codec.quantize(y, means, ids)[0]
    g_rate = codec.main_gradient(y_hat, means, scales)
    with torch.enable_grad():
        v = y_hat.clone().requires_grad_(True)
        (model.g_s(v)[..., :h, :w] - x).pow(2).sum().backward()
    g_dist = v.grad
    out["corr_main"] = _corr(g_rate, g_dist)
    x0 = codec.synthesize(y_hat)[..., :h, :w]
    base = psnr(x[0], x0[0])
    out["psnr_base"] = base
    gen = torch.Generator().manual_seed(0)
    directions = {"latent": g_rate, "true": g_dist, "constant": torch.ones_like(y_hat),
                  "sign": torch.sign(y_hat - means)}
    for name, d in directions.items():
        out[f"psnr_{name}"] = _best_step(codec, x, y_hat, d, x0, base)
    out["psnr_random"] = max(
        _best_step(codec, x, y_hat, torch.randn(y_hat.shape, generator=gen), x0, base)
        for _ in range(RANDOM_SEEDS))
    if codec.hyper:
        gc = model.gaussian_conditional
        proxy = side_gradient(model.entropy_bottleneck, z_hat)
        with torch.enable_grad():
            zv = z_hat.clone().requires_grad_(True)
            s_, m_ = model.h_s(zv).chunk(2, 1)
            bits = -torch.log2(gc._likelihood(y_hat, s_, m_).clamp_min(1e-9)).sum()
            bits.backward()
        true = zv.grad
        out["corr_side"] = _corr(proxy, true)
        out["bits_y"] = float(bits)
        steps = torch.tensor([0.0] + [s * 0.01 * 2.0 ** k for k in range(-3, 6) for s in (1, -1)])
        for name, d in (("proxy", proxy), ("true", true)):
            d = d / d.pow(2).mean().sqrt().clamp_min(1e-12)  # same candidate grid for both
            s_, m_ = model.h_s(z_hat + steps.reshape(-1, 1, 1, 1) * d).chunk(2, 1)
            lik = gc._likelihood(y_hat.expand(len(steps), -1, -1, -1), s_, m_).clamp_min(1e-9)
            out[f"bits_y_side_{name}"] = float((-torch.log2(lik)).flatten(1).sum(1).min())
    return out


@torch.no_grad()
def gradient_correlation(model: torch.nn.Module, x: torch.Tensor, latents: str = "rounded",
                         seed: int = 0) -> float:
    """Correlation over the elements of ``ŷ`` of the rate gradient ``∇_ŷ R`` and the distortion
    gradient ``∇_ŷ D`` of one image ``x`` (``(3, H, W)``), with ``ŷ`` the codec's rounded latents
    (``latents="rounded"``, test time) or ``y + u``, ``u ~ U(-1/2, 1/2)`` (``"noisy"``, the
    training relaxation; ``z`` likewise). The theorem of the KKT page predicts a correlation near
    0 for the noisy latents of images like the training data.
    Defined in book section *Lattices and the latent shift on a trained codec → Where the
    correlation comes from (Figs. 6 and 4c)*.
    """
    if latents not in ("rounded", "noisy"):
        raise ValueError(f"latents must be 'rounded' or 'noisy', got {latents!r}")
    codec = LatentCodec(model, "scalar")
    h, w = x.shape[-2:]
    xp = codecs.pad(x[None], codecs.STRIDES[codecs.architecture_of_model(model)])
    gen = torch.Generator().manual_seed(seed)
    y = model.g_a(xp)

    def noise(t: torch.Tensor) -> torch.Tensor:
        return torch.rand(t.shape, generator=gen) - 0.5

    if codec.hyper:
        z = model.h_a(y)
        if latents == "noisy":
            z_hat = z + noise(z)
        else:
            z_hat = model.entropy_bottleneck.decompress(model.entropy_bottleneck.compress(z),
                                                        z.shape[-2:])
        means, scales, ids = codec.params(z_hat, y.shape)
    else:
        means, scales, ids = codec.params(None, y.shape)
    y_hat = y + noise(y) if latents == "noisy" else codec.quantize(y, means, ids)[0]
    g_rate = codec.main_gradient(y_hat, means, scales)
    with torch.enable_grad():
        v = y_hat.clone().requires_grad_(True)
        (model.g_s(v)[..., :h, :w] - x[None]).pow(2).sum().backward()
    return _corr(g_rate, v.grad)


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True, cwd=os.path.dirname(__file__)).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run(out: str | os.PathLike, models: Sequence[tuple[str, int, torch.nn.Module]],
        images, profile: str = "cpu", modes: Sequence[str] = tuple(MODES),
        command: str = "") -> dict:
    """Code, decode and analyse ``images`` (an :class:`nctutor.data.ImageSet`, a sequence of
    ``(3, H, W)`` tensors or one tensor: :func:`nctutor.rd.image_list`) with every model
    ``(name, quality, model)`` in every mode; write the
    record to ``out`` after each image (a rerun resumes from it). Returns the record.
    Defined in book section *Lattices and the latent shift on a trained codec → How the tables
    are made*.
    """
    from .metrics import image_list

    items = image_list(images)
    record: dict = {}
    if os.path.exists(out):
        with open(out) as f:
            record = json.load(f)
    record.update(command=command, profile=profile, images=[n for n, _ in items],
                  **machine_info(), commit=_git_commit(), modes=list(modes))
    fams = record.setdefault("families", {})
    bar = tqdm(total=len(models) * len(items), desc="latent-eval")
    for name, q, model in models:
        rows = fams.setdefault(name, {}).setdefault(str(q), {})
        for image, x in items:
            if image in rows:
                bar.update()
                continue
            entry: dict = {"modes": {}}
            for mode in modes:
                coder, quantizer, shift, search = MODES[mode]
                t0 = time.perf_counter()
                blob = encode_image(model, x, name, q, profile, coder=coder,
                                    quantizer=quantizer, shift=shift, search=search)
                t1 = time.perf_counter()
                x_hat = decode_image(blob, model)
                t2 = time.perf_counter()
                entry["modes"][mode] = {
                    "bytes": len(blob), "bpp": bpp(len(blob), *x.shape[-2:]),
                    "psnr": psnr(x, x_hat), "enc_s": t1 - t0, "dec_s": t2 - t1,
                    "steps": list(read_header(blob).steps)}
            entry["analysis"] = analyse(model, x)
            rows[image] = entry
            atomic_write(out, json.dumps(record, indent=1))
            bar.update()
    bar.close()
    return record


def load_record(file: str | os.PathLike | None = None) -> dict:
    """The record written by :func:`run` (default: the shipped :data:`RECORD`).
    Defined in book section *Lattices and the latent shift on a trained codec → How the tables
    are made*.
    """
    with open(file or RECORD) as f:
        return json.load(f)


def _curve(rows: dict, key) -> dict:
    """Mean bpp and PSNR over images per quality (the paper's protocol: one point per quality)."""
    qs = sorted(rows, key=int)
    bpps = [float(np.mean([key(e)[0] for e in rows[q].values()])) for q in qs]
    psnrs = [float(np.mean([key(e)[1] for e in rows[q].values()])) for q in qs]
    return {"bpp": bpps, "psnr": psnrs}


def tables(record: dict) -> dict:
    """BD-rates and BD-PSNRs of every mode and analysis column against the scalar baseline,
    per family: ``{family: {"bd_rate": {mode: %}, "bd_psnr": {...}, ...}}``. The baseline is
    ``scalar`` (the same coder with rounding), so that only the quantizer or the shift differs.
    Defined in book section *Lattices and the latent shift on a trained codec → How the tables
    are made*.
    """
    out = {}
    for fam, rows in record["families"].items():
        base = _curve(rows, lambda e: (e["modes"]["scalar"]["bpp"], e["modes"]["scalar"]["psnr"]))
        res: dict = {"bd_rate": {}, "bd_psnr": {}, "qualities": sorted(map(int, rows))}
        method = "akima" if len(rows) >= 4 else "pchip"
        for mode in record["modes"]:
            c = _curve(rows, lambda e, m=mode: (e["modes"][m]["bpp"], e["modes"][m]["psnr"]))
            res["bd_rate"][mode] = bd_rate(base, c, method=method, min_overlap=0)
            res["bd_psnr"][mode] = bd_psnr(base, c, method=method, min_overlap=0)
        for col in ("latent", "true", "constant", "sign", "random"):
            c = _curve(rows, lambda e, k=col: (e["modes"]["scalar"]["bpp"],
                                               e["analysis"][f"psnr_{k}"]))
            res["bd_psnr"][f"analysis:{col}"] = bd_psnr(base, c, method=method, min_overlap=0)
            res["bd_rate"][f"analysis:{col}"] = bd_rate(base, c, method=method, min_overlap=0)
        snr = {}
        for q in ("scalar", "hex", "oct"):  # Table 5: SNR of the latents against the rate
            snr[q] = _curve(rows, lambda e, k=q: (
                e["modes"][k]["bpp"], -10 * math.log10(e["analysis"][f"latent_mse_{k}"])))
        res["bd_snr"] = {q: bd_psnr(snr["scalar"], c, method=method, min_overlap=0)
                         for q, c in snr.items()}
        out[fam] = res
    return out
