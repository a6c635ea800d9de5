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
from compressai.models import (
    FactorizedPrior,
    JointAutoregressiveHierarchicalPriors,
    MeanScaleHyperprior,
    ScaleHyperprior,
)

from .. import config
from .normalization import NORMALIZED
from .predictor import Checkerboard, HierarchicalSpatial, SpatialOnly

#: λ for qualities 1..8: CompressAI's MSE ladder (loss = λ·255²·MSE + bpp).
LAMBDAS = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800)
#: λ for qualities 1..8 of MS-SSIM training: CompressAI's MS-SSIM ladder (loss = λ·(1 − MS-SSIM)
#: + bpp).
MS_SSIM_LAMBDAS = (2.40, 4.58, 8.73, 16.64, 31.73, 60.50, 115.37, 220.00)
#: The distortions a codec can be trained for (``nctutor train --metric``).
METRICS = ("mse", "ms-ssim")

ARCHITECTURES: dict[str, type[torch.nn.Module]] = {
    "bmshj2018-factorized": FactorizedPrior,
    "bmshj2018-hyperprior": ScaleHyperprior,
    "mbt2018-mean": MeanScaleHyperprior,
}

#: The context models of chapter *Predicting codes from their neighbours*: the code-space
#: predictor's variants (:mod:`nctutor.codecs.predictor`) and, as the baseline, Minnen et al.'s
#: mean-scale hyperprior with an autoregressive context model (CompressAI's ``mbt2018``).
PREDICTORS: dict[str, type[torch.nn.Module]] = {
    "kwcc2018-spatial": SpatialOnly,
    "kwcc2018-hierarchical": HierarchicalSpatial,
    "kwcc2018-checkerboard": Checkerboard,
    "mbt2018": JointAutoregressiveHierarchicalPriors,
}

#: Every architecture ``create`` makes: those above, the context models and the factorized prior
#: with other normalizations (:data:`nctutor.codecs.normalization.NORMALIZED`).
_REGISTRY = {**ARCHITECTURES, **PREDICTORS, **NORMALIZED}

#: Which shipped architecture each context model may start from (matching weights are copied:
#: ``nctutor train NAME --init nctutor/weights/mbt2018-mean-qQ.pt``).
WARM_STARTS = {name: "mbt2018-mean" for name in PREDICTORS}

ALIASES = {
    "factorized": "bmshj2018-factorized",
    "hyperprior": "bmshj2018-hyperprior",
    "scale-hyperprior": "bmshj2018-hyperprior",
    "mean-scale": "mbt2018-mean",
    "mean-scale-hyperprior": "mbt2018-mean",
    "spatial": "kwcc2018-spatial",
    "hierarchical-spatial": "kwcc2018-hierarchical",
    "code-space-predictor": "kwcc2018-hierarchical",
    "checkerboard": "kwcc2018-checkerboard",
    "joint": "mbt2018",
}

#: Downsampling factor of each architecture: images are padded to a multiple of it (:func:`pad`).
STRIDES = {"bmshj2018-factorized": 16, "bmshj2018-hyperprior": 64, "mbt2018-mean": 64,
           "kwcc2018-spatial": 16, "kwcc2018-hierarchical": 64, "kwcc2018-checkerboard": 64,
           "mbt2018": 64, **dict.fromkeys(NORMALIZED, 16)}

#: The image codecs, in the order the book introduces them (default of ``nctutor bench``).
IMAGE_MODELS = tuple(ARCHITECTURES)

#: Prefix of CompressAI's own pretrained models (``"compressai:mbt2018-mean"``).
COMPRESSAI_PREFIX = "compressai:"


def canonical_name(name: str) -> str:
    """Resolve an alias (``"mean-scale"``) to the registry name (``"mbt2018-mean"``).

    Used in book section *Your first learned codec → Compressing a Kodak image*; the registry is
    that of *Transform coding with learned priors → How this book uses them*.
    """
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in _REGISTRY:
        known = ", ".join(list(_REGISTRY) + list(ALIASES))
        raise ValueError(f"unknown model {name!r}; known: {known}")
    return key


def lmbda(quality: int, metric: str = "mse") -> float:
    """The rate-distortion trade-off λ of ``quality`` (1..8) for ``metric`` (``"mse"``, or
    ``"ms-ssim"``: :data:`MS_SSIM_LAMBDAS`).

    Defined in book section *Transform coding with learned priors → The loss and the λ ladder*
    (:data:`LAMBDAS`); used in *Your first learned codec → Training* and in the notebook
    *Rate-distortion curves of three learned codecs → Learned codecs: train or load, then encode
    to bytes*.
    """
    if not isinstance(quality, int) or not 1 <= quality <= len(LAMBDAS):
        raise ValueError(f"quality must be an integer in 1..{len(LAMBDAS)}, got {quality!r}")
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    return (LAMBDAS if metric == "mse" else MS_SSIM_LAMBDAS)[quality - 1]


def create(name: str, N: int | None = None, M: int | None = None,
           profile: config.Profile | None = None) -> torch.nn.Module:
    """A fresh, untrained model ``name`` with widths ``N``, ``M`` (default: the profile's).

    Defined in book section *Transform coding with learned priors → How CompressAI implements them*.
    """
    profile = profile or config.get_profile()
    N = N or profile.N
    M = M or profile.M
    return _REGISTRY[canonical_name(name)](N=N, M=M)


def architecture_of(name: str) -> str:
    """The architecture (a key of :data:`ARCHITECTURES`) of a model name, ``compressai:`` prefix
    and aliases allowed.

    A helper of the file format of book section *Transform coding with learned priors → Real
    bitstreams*; no page calls it.
    """
    return canonical_name(name.removeprefix(COMPRESSAI_PREFIX))


def architecture_of_model(model: torch.nn.Module) -> str:
    """The registry name of a model object: the first class of :data:`ARCHITECTURES` in its
    class hierarchy, so that nctutor's own subclasses (the exact-coding twins of
    :mod:`nctutor.codecs.exact`) are recognised as the architecture they extend; another
    library's subclass (CompressAI's ``JointAutoregressiveHierarchicalPriors``) is not.

    A check of the file format of book section *Transform coding with learned priors → Real
    bitstreams*; no page calls it.
    """
    by_class = {cls: name for name, cls in _REGISTRY.items()}
    for cls in type(model).__mro__:
        if cls in by_class:
            return by_class[cls]
        if not cls.__module__.startswith("nctutor."):  # e.g. CompressAI's mbt2018, which
            break  # extends MeanScaleHyperprior with a context model: another architecture
    raise TypeError(f"model must be one of {', '.join(c.__name__ for c in by_class)} (or a "
                    f"subclass), got {type(model).__name__}")


def num_streams(arch: str) -> int:
    """How many strings ``compress()`` returns: 1 for the factorized prior, 2 with a hyperprior.

    Described in book section *Transform coding with learned priors → How CompressAI implements
    them*; a check of the file format of its section *Real bitstreams*; no page calls it.
    """
    return 1 if arch in ("bmshj2018-factorized", "kwcc2018-spatial", *NORMALIZED) else 2


def latent_shape(arch: str, height: int, width: int) -> tuple[int, int]:
    """The ``shape`` that ``compress()`` returns for an ``height×width`` image: ``y``'s for the
    factorized prior and the spatial predictor alone (stride 16), ``z``'s for the hyperpriors
    (stride 64).

    A check of the file format of book section *Transform coding with learned priors → Real
    bitstreams*; no page calls it.
    """
    s = STRIDES[arch]
    return -(-height // s), -(-width // s)


# --------------------------------------------------------------------------- the stride rule


def pad(x: torch.Tensor, stride: int) -> torch.Tensor:
    """Pad ``(B, C, H, W)`` on the right and bottom to multiples of ``stride`` by replicating the
    last row and column (a flat border costs fewer bits than a black one).

    The one stride rule of the book: ``nctutor compress``, ``nctutor eval``, the benchmark, the
    trainer's validation and the notebooks all pad with it and :func:`crop` back, so they code
    the same pixels and count the same bits. Defined in book section *Transform coding with
    learned priors → Real bitstreams*.
    """
    if stride < 1:
        raise ValueError(f"stride must be positive, got {stride}")
    h, w = x.shape[-2:]
    ph, pw = (-h) % stride, (-w) % stride
    return torch.nn.functional.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x


def crop(x_hat: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The top-left ``height × width`` of a decoded, padded image: :func:`pad` undone.

    Defined in book section *Transform coding with learned priors → Real bitstreams*.
    """
    return x_hat[..., :height, :width]


#: The modules of the context models whose weights set the symbols' probabilities: the code-space
#: predictor's, and CompressAI's ``mbt2018`` context model and entropy parameters.
CONTEXT_MODULES = ("predictor", "context_prediction", "entropy_parameters")


def model_fingerprint(model: torch.nn.Module) -> int:
    """CRC32 of the integer CDF tables of every entropy model of ``model`` (after ``update()``),
    and of the weights of a context model's predictor (:data:`CONTEXT_MODULES`).

    Encoder and decoder must use *identical* tables, or arithmetic decoding yields garbage: the
    fingerprint in a file's header lets the decoder refuse a model with other weights (another
    quality, another training run) instead of producing a wrong image. The CRC32
    *fingerprint* of book section *Transform coding with learned priors → Real bitstreams*; no
    page calls it.
    """
    import zlib

    from compressai.entropy_models import EntropyModel

    crc = 0
    found = False
    for name, module in model.named_modules():
        if name in CONTEXT_MODULES:  # a context model's probabilities depend on these weights too
            for t in module.state_dict().values():
                crc = zlib.crc32(t.detach().cpu().float().numpy().tobytes(), crc)
            found = True
        if isinstance(module, EntropyModel):
            if module._offset.numel() == 0:
                raise ValueError("the model's entropy coders are not ready: call model.update()")
            for t in (module._quantized_cdf, module._offset, module._cdf_length):
                crc = zlib.crc32(t.detach().cpu().to(torch.int32).numpy().tobytes(), crc)
            found = True
    if not found:
        raise TypeError(f"{type(model).__name__} has no entropy models")
    return crc
