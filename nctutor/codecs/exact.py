"""The hyperprior codecs with ``y`` coded exactly, one quantized Gaussian per symbol.

Defined in book section "Transform coding with learned priors → Exact Gaussian coding".

CompressAI's :class:`~compressai.entropy_models.GaussianConditional` does not code ``y`` with
the Gaussian its hyperprior predicts: it rounds each ``sigma`` *up* to one of 64 log-spaced
table scales and uses precomputed 16-bit CDF tables, which costs about 1 % over
``-sum log2 P`` on Kodak. The classes here code every symbol with its own quantized Gaussian
(:func:`nctutor.entropy.gaussian.encode_gaussian`) instead:

* :class:`ExactScaleHyperprior`, :class:`ExactMeanScaleHyperprior`: CompressAI's
  ``bmshj2018-hyperprior`` and ``mbt2018-mean`` with ``compress``/``decompress`` replaced for
  ``y`` (``z`` keeps CompressAI's ``EntropyBottleneck``); same ``{"strings": [y_strings,
  z_strings], "shape"}`` layout and the same symbols ``round(y - μ)``;
* :func:`exact`: a trained CompressAI model → its exact-coding twin (weights copied).

*Determinism.* The decoder recomputes the scales and means with ``h_s`` from the decoded ``z``;
the coder needs them bit-identical to the encoder's (CompressAI only needs the same table
*index*, which tolerates small differences except at the table's boundaries). A CPU convolution
is not bit-identical across thread counts: oneDNN splits its sums by thread, and with the
shipped weights ``h_s`` differs in the last float bit in about 80 % of its outputs between 1 and
2 threads — enough for the y stream's CRC to refuse a file encoded at 2 threads and decoded at 1
— and ``g_s`` in a few 8-bit pixels per Kodak image (4 to 9 measured). The twins therefore run
``h_s`` (encoder and decoder) and ``g_s`` (decoder) on one thread (:func:`one_thread`): an exact
file decodes to the same 8-bit image whatever ``torch.get_num_threads()`` the encoder and the
decoder use (checked in ``tests/test_container.py``, on every Kodak and CLIC image with the
shipped weights). ``g_a`` and ``h_a`` keep every thread: only the encoder runs them. The price is
a single-threaded decoder, and an ``x_hat`` that may differ from CompressAI's ``decompress``
(run at several threads) in the last float bits. Across machines (other CPU instructions, other
library versions) or on GPUs with nondeterministic convolution algorithms one thread is not
enough: the float scales differ, and the stream's CRC refuses the file. The ``.nct`` files of
format version 4 therefore code inside :func:`nctutor.entropy.integer.integer_entropy`, which
runs ``h_s`` as an integer network whose outputs are the same on every machine (book section
"Transform coding with learned priors → Decoding on another machine"); the file format carries
these streams with ``coder`` = exact (:mod:`nctutor.container`).
"""

from __future__ import annotations

import torch
from compressai.models import MeanScaleHyperprior, ScaleHyperprior

from ..config import one_thread
from ..entropy.gaussian import decode_gaussian, encode_gaussian
from .image import ARCHITECTURES, architecture_of_model

__all__ = ["ExactScaleHyperprior", "ExactMeanScaleHyperprior", "EXACT_CLASSES", "exact",
           "has_exact_coder", "one_thread"]


class _ExactY:
    """Codes ``y`` of a hyperprior model with :func:`encode_gaussian` (one string per image).

    The symbols are CompressAI's: ``round(y - μ)`` (``μ = 0`` without means), coded with the
    zero-mean Gaussian of scale ``max(σ, 0.11)`` — exactly the likelihood that ``forward``
    computes and training minimizes (``GaussianConditional._likelihood``).
    """

    gaussian_conditional: torch.nn.Module
    entropy_bottleneck: torch.nn.Module
    h_s: torch.nn.Module
    g_s: torch.nn.Module
    M: int

    def _params(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``σ`` and ``μ`` (``None`` for the scale hyperprior) of ``y``, predicted from ``z_hat``
        on one thread, so that encoder and decoder compute them bit for bit alike."""
        with one_thread():
            params = self.h_s(z_hat)
        return (params, None) if params.size(1) == self.M else params.chunk(2, 1)

    def _scales(self, scales_hat: torch.Tensor) -> torch.Tensor:
        return self.gaussian_conditional.lower_bound_scale(scales_hat)

    def _encode_y(self, y, scales_hat, means_hat=None) -> list[bytes]:
        q = self.gaussian_conditional.quantize(y, "symbols", means_hat)
        s = self._scales(scales_hat)
        return [encode_gaussian(q[i], None, s[i]) for i in range(y.size(0))]

    def _decode_y(self, strings, scales_hat, means_hat=None) -> torch.Tensor:
        if len(strings) != scales_hat.size(0):
            raise ValueError(f"{len(strings)} y strings for a batch of {scales_hat.size(0)}")
        s = self._scales(scales_hat)
        q = torch.stack([decode_gaussian(b, None, s[i]) for i, b in enumerate(strings)])
        return self.gaussian_conditional.dequantize(q.to(scales_hat.device), means_hat,
                                                    scales_hat.dtype)

    def _compress_y(self, y: torch.Tensor, z: torch.Tensor) -> dict:
        z_strings = self.entropy_bottleneck.compress(z)
        z_hat = self.entropy_bottleneck.decompress(z_strings, z.size()[-2:])
        y_strings = self._encode_y(y, *self._params(z_hat))
        return {"strings": [y_strings, z_strings], "shape": z.size()[-2:]}

    def decompress(self, strings: list, shape) -> dict:
        """``{"x_hat"}`` from ``[y_strings, z_strings]``; ``h_s`` and ``g_s`` on one thread."""
        if not isinstance(strings, list) or len(strings) != 2:
            raise ValueError("strings must be [y_strings, z_strings]")
        z_hat = self.entropy_bottleneck.decompress(strings[1], shape)
        y_hat = self._decode_y(strings[0], *self._params(z_hat))
        with one_thread():
            return {"x_hat": self.g_s(y_hat).clamp_(0, 1)}


class ExactScaleHyperprior(_ExactY, ScaleHyperprior):
    """``bmshj2018-hyperprior`` (Ballé et al. 2018) with ``y`` coded by :func:`encode_gaussian`.

    Defined in book section "Transform coding with learned priors → Exact Gaussian coding".
    """

    def compress(self, x: torch.Tensor) -> dict:
        y = self.g_a(x)
        return self._compress_y(y, self.h_a(torch.abs(y)))


class ExactMeanScaleHyperprior(_ExactY, MeanScaleHyperprior):
    """``mbt2018-mean`` (Minnen et al. 2018) with ``y`` coded by :func:`encode_gaussian`.

    Defined in book section "Transform coding with learned priors → Exact Gaussian coding".
    """

    def compress(self, x: torch.Tensor) -> dict:
        y = self.g_a(x)
        return self._compress_y(y, self.h_a(y))


#: CompressAI class → its exact-coding twin.
EXACT_CLASSES: dict[type, type] = {
    ScaleHyperprior: ExactScaleHyperprior,
    MeanScaleHyperprior: ExactMeanScaleHyperprior,
}


def has_exact_coder(arch: str) -> bool:
    """Whether the architecture ``arch`` (a registry name) has an exact-coding twin: the
    hyperpriors, whose ``y`` has a Gaussian to code; the factorized prior has none.

    Checked by the file format and the command line before ``coder="exact"`` is used (book
    section "Transform coding with learned priors → Exact Gaussian coding"); no page calls it.
    """
    return ARCHITECTURES.get(arch) in EXACT_CLASSES  # context models: not in ARCHITECTURES


def exact(model: torch.nn.Module) -> torch.nn.Module:
    """The exact-coding twin of a CompressAI ``ScaleHyperprior`` or ``MeanScaleHyperprior``.

    A new model of the matching ``Exact…`` class with ``model``'s state dict (weights and entropy
    coder tables, so that :func:`nctutor.codecs.model_fingerprint` is unchanged), on its device
    and in its train/eval mode; ``model`` is left unchanged, and ``model.nctutor`` (see
    :func:`nctutor.zoo.load`) is copied with ``"coder": "exact"`` added. The architecture is
    found by :func:`nctutor.codecs.architecture_of_model` (the class hierarchy), so an ``Exact…``
    model gives a fresh copy of itself.
    Defined in book section "Transform coding with learned priors → Exact Gaussian coding".
    """
    base = ARCHITECTURES.get(architecture_of_model(model))
    cls = EXACT_CLASSES.get(base)
    if cls is None:
        known = ", ".join(c.__name__ for c in EXACT_CLASSES)
        raise TypeError(f"exact() takes a {known}, got {type(model).__name__} (the factorized "
                        f"prior has no Gaussian to code exactly)")
    twin = cls(N=int(model.N), M=int(model.M))
    try:
        twin.load_state_dict(model.state_dict())
    except RuntimeError as e:  # a subclass with other layers (e.g. a context model)
        raise TypeError(f"exact() copies the layers of a {base.__name__}; the "
                        f"{type(model).__name__} given has others ({e})") from None
    param = next(model.parameters())
    twin.to(param.device).train(model.training)
    if hasattr(model, "nctutor"):
        twin.nctutor = {**model.nctutor, "coder": "exact"}
    return twin
