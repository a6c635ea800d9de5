"""The tolerance with which re-measured PSNRs and MS-SSIMs are compared with stored ones
(:data:`nctutor.rd.metrics.PSNR_TOLERANCE_DB`, :data:`nctutor.rd.metrics.MS_SSIM_TOLERANCE`) is
both wide enough and tight enough, measured with the shipped ``mbt2018-mean`` of quality 1:

- wide enough: the same symbols decoded under other kernels (AVX2 instead of AVX-512, ATen's
  default kernels, one thread) give a PSNR and an MS-SSIM within it;
- tight enough: changing one latent of ŷ by ±1 moves the PSNR (and the MS-SSIM) of a 192×192
  Kodak crop by more than it, for most latents.

The reconstruction is ``g_s(ŷ)`` with ``ŷ = symbols + μ`` and ``μ`` from ``h_s(ẑ)``: the float
part of the decoder, which is what differs between machines (its entropy decoding is not under
test here).
"""

import json
import os
import subprocess
import sys
import textwrap

import torch

from nctutor import data, zoo
from nctutor.rd.metrics import MS_SSIM_TOLERANCE, PSNR_TOLERANCE_DB, ms_ssim, psnr

OTHER_KERNELS = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "default",
                 "OMP_NUM_THREADS": "1"}


def _model():
    return zoo.load("mbt2018-mean", 1, "cpu", train_if_missing=False)  # the shipped weights


@torch.no_grad()
def _symbols(model, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ẑ, symbols of y)`` of the image ``x`` (1, 3, H, W): what a file holds."""
    y = model.g_a(x)
    eb = model.entropy_bottleneck
    z_hat = eb.quantize(model.h_a(y), "dequantize", eb._get_medians())
    _, means = model.h_s(z_hat).chunk(2, 1)
    return z_hat, torch.round(y - means)


@torch.no_grad()
def _reconstruction(model, z_hat: torch.Tensor, symbols: torch.Tensor) -> torch.Tensor:
    _, means = model.h_s(z_hat).chunk(2, 1)
    return model.g_s(symbols + means).clamp(0, 1)


def _centre(x: torch.Tensor, side: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    top, left = (h - side) // 2, (w - side) // 2
    return x[..., top : top + side, left : left + side]


def test_one_latent_changed_by_one_moves_the_metrics_beyond_the_tolerance():
    """16 latents of a 192×192 crop of kodim01 (random, seeded), each changed by ±1 alone: three
    in four move the PSNR by more than the tolerance, the median by three times more (measured:
    the smallest 5.4e-5 dB, the median 7.2e-4 dB); half of them move the MS-SSIM by more than its
    tolerance. (On the whole 768×512 image a latent is diluted
    11×: there the PSNR catches about a third of them, the byte count all.)"""
    model = _model()
    x = _centre(data.kodak(1)[0][None], 192)
    z_hat, symbols = _symbols(model, x)
    x_hat = _reconstruction(model, z_hat, symbols)
    p0, s0 = psnr(x, x_hat), ms_ssim(x, x_hat)
    g = torch.Generator().manual_seed(0)
    d_psnr, d_ssim = [], []
    for k in range(16):
        c, i, j = (int(torch.randint(n, (1,), generator=g)) for n in symbols.shape[1:])
        changed = symbols.clone()
        changed[0, c, i, j] += 1 if k % 2 == 0 else -1
        x_changed = _reconstruction(model, z_hat, changed)
        d_psnr.append(abs(psnr(x, x_changed) - p0))
        d_ssim.append(abs(ms_ssim(x, x_changed) - s0))
    d_psnr.sort()
    d_ssim.sort()
    assert d_psnr[4] > PSNR_TOLERANCE_DB, d_psnr  # 12 of 16 (and the median below) above it
    assert d_psnr[8] > 3 * PSNR_TOLERANCE_DB, d_psnr
    assert d_ssim[8] > MS_SSIM_TOLERANCE, d_ssim


_OTHER_PROCESS = textwrap.dedent("""
    import json, sys, torch
    from nctutor import data, zoo
    from nctutor.rd.metrics import ms_ssim, psnr
    z_hat, symbols = torch.load(sys.argv[1])
    model = zoo.load("mbt2018-mean", 1, "cpu", train_if_missing=False)
    with torch.no_grad():
        _, means = model.h_s(z_hat).chunk(2, 1)
        x_hat = model.g_s(symbols + means).clamp(0, 1)
    x = data.kodak(1)[0][None]
    print(json.dumps({"psnr": psnr(x, x_hat), "ms_ssim": ms_ssim(x, x_hat),
                      "kernels": torch.backends.cpu.get_cpu_capability(),
                      "threads": torch.get_num_threads()}))
""")


def test_other_kernels_stay_within_the_tolerance(tmp_path):
    """kodim01, whole: its symbols decoded here and in a process with other kernels
    (:data:`OTHER_KERNELS`) give PSNRs and MS-SSIMs within the tolerances (measured on an
    AVX-512 machine at 2 threads: 7e-7 dB apart, the same MS-SSIM)."""
    model = _model()
    x = data.kodak(1)[0][None]
    z_hat, symbols = _symbols(model, x)
    x_hat = _reconstruction(model, z_hat, symbols)
    torch.save((z_hat, symbols), tmp_path / "symbols.pt")
    done = subprocess.run([sys.executable, "-c", _OTHER_PROCESS, str(tmp_path / "symbols.pt")],
                          env={**os.environ, **OTHER_KERNELS}, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    other = json.loads(done.stdout.strip().splitlines()[-1])
    assert other["threads"] == 1
    assert abs(other["psnr"] - psnr(x, x_hat)) < PSNR_TOLERANCE_DB, other
    assert abs(other["ms_ssim"] - ms_ssim(x, x_hat)) < MS_SSIM_TOLERANCE, other
