"""The book's image codecs, built on CompressAI.

Chapter *Transform coding with learned priors* (sections *The factorized prior*, *The scale
hyperprior*, *The mean-scale hyperprior*, *The loss and the λ ladder*, *How CompressAI implements
them*).

- ``bmshj2018-factorized``: the factorized prior of Ballé et al. (2017), GDN transforms and one
  :class:`compressai.entropy_models.EntropyBottleneck` per channel;
- ``bmshj2018-hyperprior``: the scale hyperprior of Ballé et al. (2018): a hyper-latent z with a
  factorized prior predicts the scales of a :class:`~compressai.entropy_models.GaussianConditional`;
- ``mbt2018-mean``: the mean-scale hyperprior of Minnen et al. (2018), which also predicts means.

They *are* CompressAI's classes (``FactorizedPrior``, ``ScaleHyperprior``,
``MeanScaleHyperprior``): the lesson is how they are trained and evaluated, not a re-typing of
their layers. Each has ``forward(x) -> {"x_hat", "likelihoods"}``, and after ``update()``,
``compress(x) -> {"strings", "shape"}`` and ``decompress(strings, shape) -> {"x_hat"}``.

A *quality* index 1..8 selects λ from CompressAI's MSE ladder (:data:`LAMBDAS`); the channel
widths come from the profile (:mod:`nctutor.config`).
"""

from __future__ import annotations

import torch
from compressai.models import FactorizedPrior, MeanScaleHyperprior, ScaleHyperprior

from . import config

#: λ for qualities 1..8: CompressAI's MSE ladder (loss = λ·255²·MSE + bpp).
LAMBDAS = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800)

ARCHITECTURES: dict[str, type[torch.nn.Module]] = {
    "bmshj2018-factorized": FactorizedPrior,
    "bmshj2018-hyperprior": ScaleHyperprior,
    "mbt2018-mean": MeanScaleHyperprior,
}

ALIASES = {
    "factorized": "bmshj2018-factorized",
    "hyperprior": "bmshj2018-hyperprior",
    "scale-hyperprior": "bmshj2018-hyperprior",
    "mean-scale": "mbt2018-mean",
    "mean-scale-hyperprior": "mbt2018-mean",
}

#: Downsampling factor of each architecture: images are padded to a multiple of it.
STRIDES = {"bmshj2018-factorized": 16, "bmshj2018-hyperprior": 64, "mbt2018-mean": 64}


def canonical_name(name: str) -> str:
    """Resolve an alias (``"mean-scale"``) to the registry name (``"mbt2018-mean"``).

    Used in book section *Your first learned codec → Compressing a Kodak image*; the registry is
    that of *Transform coding with learned priors → How this book uses them*.
    """
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in ARCHITECTURES:
        known = ", ".join(list(ARCHITECTURES) + list(ALIASES))
        raise ValueError(f"unknown model {name!r}; known: {known}")
    return key


def lmbda(quality: int) -> float:
    """The rate-distortion trade-off λ of ``quality`` (1..8).

    Defined in book section *Transform coding with learned priors → The loss and the λ ladder*
    (:data:`LAMBDAS`); used in *Your first learned codec → Training* and in the notebook
    *Rate-distortion curves of three learned codecs → Learned codecs: train or load, then encode
    to bytes*.
    """
    if not isinstance(quality, int) or not 1 <= quality <= len(LAMBDAS):
        raise ValueError(f"quality must be an integer in 1..{len(LAMBDAS)}, got {quality!r}")
    return LAMBDAS[quality - 1]


def create(name: str, N: int | None = None, M: int | None = None,
           profile: config.Profile | None = None) -> torch.nn.Module:
    """A fresh, untrained model ``name`` with widths ``N``, ``M`` (default: the profile's).

    Defined in book section *Transform coding with learned priors → How CompressAI implements them*.
    """
    profile = profile or config.get_profile()
    N = N or profile.N
    M = M or profile.M
    return ARCHITECTURES[canonical_name(name)](N=N, M=M)
