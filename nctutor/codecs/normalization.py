"""Divisive normalization in three forms, and the factorized prior built with each.

Defined in book section *Predicting codes from their neighbours → Which GDN is SGDN?*.

Table 1 of Klopp et al. (supplement, Section 8.2.1) puts an "SGDN" after every encoder
convolution and an "SIGDN" after every decoder one, and never defines them. Three forms of
divisive normalization are candidates (``x`` the input, ``i, j`` channels, one pixel):

- **general GDN** (Ballé et al. 2016, Eq. 1 there): ``y_i = x_i / (β_i + Σ_j γ_ij |x_j|^α_ij)^ε_i``
  with learned exponents (:class:`GeneralGDN`, written here by hand; one exponent per source
  channel, ``α_ij = α_j``, so that it stays a 1×1 convolution of ``|x|^α``);
- **GDN with fixed exponents** ``α = 2, ε = ½``: ``y_i = x_i / sqrt(β_i + Σ_j γ_ij x_j²)``, the
  simplification that Ballé et al. (2017, 2018) use and that CompressAI calls ``GDN``; the
  book's codecs use it;
- **GDN1** (Johnston et al. 2019): ``α = 1, ε = 1``, no square or root at all (CompressAI's
  ``GDN1``), published a year after Klopp et al.

The book reads SGDN as the second: in 2018 it was *the* simplified GDN, the one every learned
codec used, and Table 1's "1x1" kernel fits it. :data:`NORMALIZED` holds the factorized prior
(Ballé et al. 2017) with the general form and with GDN1 in place of its GDN layers, so that the
three can be trained alike and compared (``bmshj2018-factorized`` is the fixed-exponent one).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from compressai.layers import GDN, GDN1
from compressai.models import FactorizedPrior
from compressai.ops import LowerBound


class GeneralGDN(GDN):
    """GDN with learned exponents (Ballé et al. 2016): ``y_i = x_i / (β_i + Σ_j γ_ij
    |x_j|^α_j)^ε_i``, and its inverse ``x_i = y_i · (β_i + Σ_j γ_ij |y_j|^α_j)^ε_i`` (the
    approximate inverse that IGDN also is). ``α`` is kept ≥ 1 and ``ε`` ≥ 0.1 (a lower bound
    whose gradient still pushes back up, CompressAI's ``LowerBound``); at initialization
    ``α = 2``, ``ε = ½``, so the layer starts as CompressAI's ``GDN``. Defined in book section
    *Predicting codes from their neighbours → Which GDN is SGDN?*."""

    def __init__(self, in_channels: int, inverse: bool = False, beta_min: float = 1e-6,
                 gamma_init: float = 0.1) -> None:
        super().__init__(in_channels, inverse, beta_min, gamma_init)
        self.alpha = torch.nn.Parameter(torch.full((in_channels,), 2.0))
        self.epsilon = torch.nn.Parameter(torch.full((in_channels,), 0.5))
        self.alpha_bound, self.epsilon_bound = LowerBound(1.0), LowerBound(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        C = x.shape[1]
        beta = self.beta_reparam(self.beta)
        gamma = self.gamma_reparam(self.gamma).reshape(C, C, 1, 1)
        alpha = self.alpha_bound(self.alpha).reshape(1, C, 1, 1)
        epsilon = self.epsilon_bound(self.epsilon).reshape(1, C, 1, 1)
        norm = F.conv2d(x.abs() ** alpha, gamma, beta)
        return x * norm ** (epsilon if self.inverse else -epsilon)


class _Normalized(FactorizedPrior):
    """The factorized prior with :attr:`LAYER` in place of every GDN (and IGDN) layer; the
    convolutions are made first, exactly as in ``FactorizedPrior``, so that one seed gives the
    same starting convolutions to every form."""

    LAYER: type[GDN] = GDN

    def __init__(self, N: int, M: int, **kwargs) -> None:
        super().__init__(N, M, **kwargs)
        for transform, inverse in ((self.g_a, False), (self.g_s, True)):
            for i, layer in enumerate(transform):
                if isinstance(layer, GDN):
                    transform[i] = self.LAYER(layer.beta.numel(), inverse=inverse)


class FactorizedGeneralGDN(_Normalized):
    """``bmshj2018-factorized-gdn-general``: the factorized prior with :class:`GeneralGDN`.
    Defined in book section *Predicting codes from their neighbours → Which GDN is SGDN?*."""

    LAYER = GeneralGDN


class FactorizedGDN1(_Normalized):
    """``bmshj2018-factorized-gdn1``: the factorized prior with CompressAI's ``GDN1``.
    Defined in book section *Predicting codes from their neighbours → Which GDN is SGDN?*."""

    LAYER = GDN1


#: Registry name → class of the factorized prior with another normalization.
NORMALIZED: dict[str, type[FactorizedPrior]] = {
    "bmshj2018-factorized-gdn-general": FactorizedGeneralGDN,
    "bmshj2018-factorized-gdn1": FactorizedGDN1,
}
