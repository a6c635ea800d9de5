"""The quality metrics pinned against independent values: CompressAI's evaluation on 0..255.

``compressai.utils.eval_model`` rounds both images to 0..255 and calls ``pytorch_msssim.ms_ssim``
with ``data_range=255``; :func:`nctutor.rd.ms_ssim` must give the same number (and not SSIM's,
which a test of ranges alone would accept).
"""

import math

import pytest
import torch
from pytorch_msssim import ms_ssim, ssim

from nctutor import data, rd


def _compressai_scale(x: torch.Tensor) -> torch.Tensor:
    """``(N, 3, H, W)`` on 0..255, rounded: what CompressAI's ``compute_metrics`` compares."""
    return (x * 255).clamp(0, 255).round()


@pytest.fixture(scope="module")
def pair():
    """A 256×256 crop of kodim01 and a noisy copy: MS-SSIM ≈ 0.88 while SSIM ≈ 0.53."""
    x = data.center_crop(data.kodak(1)[0], 256)
    noise = 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    return x, (x + noise).clamp(0, 1)


def test_ms_ssim_is_compressais_ms_ssim_not_ssim(pair):
    x, y = pair
    a, b = _compressai_scale(x[None]), _compressai_scale(y[None])
    expected = ms_ssim(a, b, data_range=255).item()
    single_scale = ssim(a, b, data_range=255).item()
    assert abs(expected - single_scale) > 0.2  # the pair tells the two apart
    assert rd.ms_ssim(x, y) == pytest.approx(expected, abs=1e-5)
    uint8 = rd.ms_ssim(data.to_uint8(x), data.to_uint8(y))  # uint8 images are taken as they are
    assert uint8 == pytest.approx(expected, abs=1e-5)


def test_ms_ssim_of_a_batch_is_the_mean_of_its_images(pair):
    x, y = pair
    blurred = torch.nn.functional.avg_pool2d(x[None], 3, stride=1, padding=1)[0]
    batch = rd.ms_ssim(torch.stack([x, x]), torch.stack([y, blurred]))
    assert batch == pytest.approx((rd.ms_ssim(x, y) + rd.ms_ssim(x, blurred)) / 2, abs=1e-6)
    assert rd.ms_ssim(x, blurred) != pytest.approx(rd.ms_ssim(x, y), abs=1e-3)


def test_psnr_is_compressais_psnr_on_0_255(pair):
    x, y = pair
    a, b = _compressai_scale(x), _compressai_scale(y)
    expected = 20 * math.log10(255) - 10 * math.log10(float((a - b).pow(2).mean()))
    assert rd.psnr(x, y) == pytest.approx(expected, abs=1e-4)
