"""The book's codecs: one module per codec family.

- :mod:`nctutor.codecs.image`: the registry of the image codecs (CompressAI's factorized prior,
  scale and mean-scale hyperpriors), the λ ladder and the one stride rule (:func:`pad`,
  :func:`crop`); chapter *Transform coding with learned priors*;
- :mod:`nctutor.codecs.exact`: the hyperpriors with ``y`` coded exactly (section *Exact
  Gaussian coding*);
- :mod:`nctutor.codecs.predictor`: the code-space predictor's context models (chapter
  *Predicting codes from their neighbours*);
- :mod:`nctutor.codecs.normalization`: the factorized prior with other forms of GDN (its
  section *Which GDN is SGDN?*).

The names of :mod:`~nctutor.codecs.image` are also available here (``codecs.create``).
"""

from .image import (
    ALIASES,
    ARCHITECTURES,
    COMPRESSAI_PREFIX,
    IMAGE_MODELS,
    LAMBDAS,
    METRICS,
    MS_SSIM_LAMBDAS,
    NORMALIZED,
    PREDICTORS,
    STRIDES,
    WARM_STARTS,
    architecture_of,
    architecture_of_model,
    canonical_name,
    create,
    crop,
    latent_shape,
    lmbda,
    model_fingerprint,
    num_streams,
    pad,
)

__all__ = [
    "ALIASES", "ARCHITECTURES", "COMPRESSAI_PREFIX", "IMAGE_MODELS", "LAMBDAS", "METRICS",
    "MS_SSIM_LAMBDAS", "NORMALIZED", "PREDICTORS",
    "STRIDES", "WARM_STARTS",
    "architecture_of", "architecture_of_model", "canonical_name", "create", "crop",
    "latent_shape", "lmbda", "model_fingerprint", "num_streams", "pad",
]
