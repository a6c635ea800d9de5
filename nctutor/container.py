"""A file format for one compressed image: header, entropy-coded streams, checksum.

Chapter *Transform coding with learned priors*, section *Real bitstreams*. The model's
``compress()`` gives byte strings (one per entropy model: ``[y]`` for the factorized prior,
``[y, z]`` for the hyperpriors) and the latent ``shape``; what a *file* adds is everything the
decoder must know before it can run ``decompress()``, and a way to refuse anything else.

Layout (all integers big-endian)::

    offset  size  field
    0       4     magic b"NCT1"
    4       1     format version (1)
    5       1     padding mode (0: replicate, bottom and right)
    6       1     quality (1..8)
    7       1     number of streams n (1 or 2, fixed by the model)
    8       4     original height H
    12      4     original width W
    16      2+2   latent shape from compress() (h, w)
    20      2+2   channel widths N, M of the model
    24      4     fingerprint: CRC32 of the model's integer CDF tables (wrong-model check)
    28      1+1   lengths of the model name and profile name (ASCII, at most 48 each)
    30      …     model name, profile name
    …       4·n   stream lengths
    …       4     CRC32 (zlib.crc32) of every header byte before it *and* of the payload
    …       …     payload: the n streams, concatenated

Padding: the image is padded on the right and bottom to a multiple of the model's stride
(:data:`nctutor.codecs.STRIDES`) by *replicating* its last row and column (a flat border costs
fewer bits than a black one); the decoder crops the first H rows and W columns back.

Robustness: :func:`read_header` checks the magic, version, every field's range, that the latent
shape is the one H, W and the model imply, that the stream lengths add up to exactly the bytes
that follow, and the CRC — all before the model or any tensor is touched; a file that claims more
than :data:`MAX_SIDE` pixels a side or :data:`MAX_PIXELS` in all is refused (the encoder refuses to
write one). Everything wrong with a file raises :class:`BitstreamError`.

Memory: the whole image goes through the model at once (no tiling); peak memory grows like
N·H·W. For the 2048×1363 CLIC photo with the smoke-size mean-scale model (N=16, M=24) on CPU,
encoding and decoding add about 0.15-0.25 GB to the ~1.2 GB that importing torch already takes
(measured with ``resource.getrusage``, see ``tests/test_bitstream.py``); the ``gpu`` widths
(N=128, M=192) need roughly eight times that.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import torch

from . import codecs
from .codecs import architecture_of, latent_shape, model_fingerprint, num_streams
from .errors import BitstreamError

MAGIC = b"NCT1"
VERSION = 1
PAD_REPLICATE = 0
MAX_SIDE = 16384
MAX_PIXELS = 50_000_000
MAX_NAME = 48

_FIXED = struct.Struct(">4sBBBBIIHHHHIBB")  # everything up to the two names
_U32 = struct.Struct(">I")


@dataclass(frozen=True)
class Header:
    """The parsed header of an ``.nct`` file (see the module docstring for the layout).

    Attributes:
        version: format version.
        model: model name as written by the encoder (``"mbt2018-mean"``,
            ``"compressai:mbt2018-mean"``).
        quality: quality index 1..8.
        profile: profile the model was made with (``""`` for CompressAI's pretrained models).
        height, width: size of the original image.
        padding: padding mode (0: replicate at the bottom and right).
        shape: latent shape passed to ``decompress()``.
        N, M: channel widths of the model.
        fingerprint: CRC32 of the model's CDF tables (see :func:`model_fingerprint`).
        lengths: byte length of each stream.
        header_size: bytes before the payload.

    Defined in book section *Transform coding with learned priors → Real bitstreams* (the page
    displays one).
    """

    version: int
    model: str
    quality: int
    profile: str
    height: int
    width: int
    padding: int
    shape: tuple[int, int]
    N: int
    M: int
    fingerprint: int
    lengths: tuple[int, ...]
    header_size: int

    @property
    def architecture(self) -> str:
        """Registry name of the architecture (``"compressai:"`` prefix removed)."""
        return architecture_of(self.model)

    @property
    def payload_size(self) -> int:
        """Total bytes of the entropy-coded streams."""
        return sum(self.lengths)


# --------------------------------------------------------------------------- header


def _pack_header(h: Header) -> bytes:
    name, profile = h.model.encode("ascii"), h.profile.encode("ascii")
    fixed = _FIXED.pack(MAGIC, h.version, h.padding, h.quality, len(h.lengths), h.height,
                        h.width, h.shape[0], h.shape[1], h.N, h.M, h.fingerprint,
                        len(name), len(profile))
    return fixed + name + profile + b"".join(_U32.pack(n) for n in h.lengths)


def _name(raw: bytes, what: str) -> str:
    if not all(0x21 <= b < 0x7F for b in raw):
        raise BitstreamError(f"corrupted file: the {what} is not printable ASCII")
    return raw.decode("ascii")


def read_header(blob: bytes) -> Header:
    """Parse and validate the header of ``blob`` (the whole file): every check of the module
    docstring, CRC included, without decoding anything. Raises :class:`BitstreamError`.

    Defined in book section *Transform coding with learned priors → Real bitstreams*.
    """
    if not isinstance(blob, bytes | bytearray | memoryview):
        raise TypeError(f"blob must be bytes, got {type(blob).__name__}")
    blob = bytes(blob)
    if len(blob) < 4 or blob[:4] != MAGIC:
        raise BitstreamError("not an nctutor file (bad magic number; expected b'NCT1')")
    if len(blob) < _FIXED.size:
        raise BitstreamError(f"truncated file: {len(blob)} bytes, the header alone is longer")
    (_, version, padding, quality, n, height, width, sh, sw, N, M, fingerprint, name_len,
     profile_len) = _FIXED.unpack_from(blob)
    if version != VERSION:
        raise BitstreamError(f"unsupported format version {version} (this nctutor reads "
                             f"version {VERSION})")
    if padding != PAD_REPLICATE:
        raise BitstreamError(f"corrupted file: unknown padding mode {padding}")
    if not 1 <= quality <= len(codecs.LAMBDAS):
        raise BitstreamError(f"corrupted file: quality {quality} is not in 1..8")
    if not (1 <= name_len <= MAX_NAME and profile_len <= MAX_NAME):
        raise BitstreamError("corrupted file: implausible model or profile name length")
    end_names = _FIXED.size + name_len + profile_len
    header_size = end_names + 4 * n + 4
    if len(blob) < header_size:
        raise BitstreamError(f"truncated file: {len(blob)} bytes, header needs {header_size}")
    model = _name(blob[_FIXED.size : _FIXED.size + name_len], "model name")
    profile = _name(blob[_FIXED.size + name_len : end_names], "profile name") if profile_len else ""
    try:
        arch = architecture_of(model)
    except ValueError:
        raise BitstreamError(f"unknown model {model!r} in the file") from None
    if n != num_streams(arch):
        raise BitstreamError(f"corrupted file: {n} streams, {model} writes {num_streams(arch)}")
    if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE and height * width <= MAX_PIXELS):
        raise BitstreamError(f"implausible image size {height}×{width} (at most {MAX_SIDE} a side "
                             f"and {MAX_PIXELS} pixels)")
    if (sh, sw) != latent_shape(arch, height, width):
        raise BitstreamError(f"corrupted file: latent shape {(sh, sw)} does not fit a "
                             f"{height}×{width} image")
    if N < 1 or M < 1:
        raise BitstreamError("corrupted file: zero channel width")
    lengths = tuple(_U32.unpack_from(blob, end_names + 4 * i)[0] for i in range(n))
    payload = len(blob) - header_size
    if sum(lengths) != payload:
        what = "truncated" if sum(lengths) > payload else "corrupted (trailing bytes)"
        raise BitstreamError(f"{what} file: the streams should take {sum(lengths)} bytes, "
                             f"{payload} follow the header")
    (stored_crc,) = _U32.unpack_from(blob, header_size - 4)
    crc = zlib.crc32(blob[header_size:], zlib.crc32(blob[: header_size - 4]))
    if crc != stored_crc:
        raise BitstreamError("corrupted file: CRC32 mismatch")
    return Header(version, model, quality, profile, height, width, padding, (sh, sw), N, M,
                  fingerprint, lengths, header_size)


# --------------------------------------------------------------------------- encode / decode


@torch.no_grad()
def encode_image(model: torch.nn.Module, x: torch.Tensor, model_name: str, quality: int,
                 profile: str = "") -> bytes:
    """Compress the image ``x`` (``(3, H, W)`` or ``(1, 3, H, W)``, values in ``[0, 1]``) into a
    complete file: pad to the model's stride, ``model.compress``, header, CRC.

    ``model_name``/``quality``/``profile`` are written to the header so that a decoder can find the
    same model (``nctutor.zoo.load(model_name, quality, profile)``); ``model`` must be in eval mode
    with ``update()`` done. Defined in book section *Transform coding with learned priors →
    Real bitstreams*.
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError("x must be a floating-point torch.Tensor")
    if x.dim() == 4 and x.shape[0] == 1:
        x = x[0]
    if x.dim() != 3 or x.shape[0] != 3:
        raise ValueError(f"x must have shape (3, H, W) or (1, 3, H, W), got {tuple(x.shape)}")
    if not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise ValueError("x must hold finite values in [0, 1]")
    arch = architecture_of(model_name)
    if codecs.architecture_of_model(model) != arch:
        raise ValueError(f"model is a {type(model).__name__}, not a {arch}")
    codecs.lmbda(quality)  # validates quality
    for s, what in ((model_name, "model_name"), (profile, "profile")):
        if not (len(s) <= MAX_NAME and all(0x21 <= ord(c) < 0x7F for c in s)):
            raise ValueError(f"{what} must be printable ASCII without spaces, at most {MAX_NAME}")
    if not model_name:
        raise ValueError("model_name must not be empty")
    _, height, width = x.shape
    if height > MAX_SIDE or width > MAX_SIDE or height * width > MAX_PIXELS:
        raise ValueError(f"image {height}×{width} is too large for the format (at most "
                         f"{MAX_SIDE} a side and {MAX_PIXELS} pixels)")
    if model.training:
        raise ValueError("model must be in eval mode (call model.eval())")
    fingerprint = model_fingerprint(model)
    device = next(model.parameters()).device
    xp = codecs.pad(x[None].to(device), codecs.STRIDES[arch])
    out = model.compress(xp)
    streams = [bytes(s[0]) for s in out["strings"]]
    shape = tuple(int(v) for v in out["shape"])
    if shape != latent_shape(arch, height, width):  # cannot happen with the registry's models
        raise RuntimeError(f"compress() returned shape {shape}, expected "
                           f"{latent_shape(arch, height, width)}")
    header = Header(VERSION, model_name, quality, profile, height, width, PAD_REPLICATE, shape,
                    int(model.N), int(model.M), fingerprint, tuple(len(s) for s in streams), 0)
    head = _pack_header(header)
    payload = b"".join(streams)
    crc = zlib.crc32(payload, zlib.crc32(head))
    return head + _U32.pack(crc) + payload


@torch.no_grad()
def decode_image(blob: bytes, model: torch.nn.Module) -> torch.Tensor:
    """Decode a file made by :func:`encode_image` with ``model``: a float tensor ``(3, H, W)`` in
    ``[0, 1]`` on the CPU. Raises :class:`BitstreamError` for a damaged or foreign file, or when
    ``model`` is not the one that wrote it (architecture, widths or CDF tables differ).

    Decoding is deterministic: the same file and model give the same tensor on the same machine
    and thread count; the entropy-decoded latents are identical whatever the thread count, while
    the synthesis transform's float output may differ in the last bits (about 1e-7) between thread
    counts, which has not changed an 8-bit pixel in the tests.
    Defined in book section *Transform coding with learned priors → Real bitstreams*.
    """
    h = read_header(blob)
    arch = codecs.architecture_of_model(model)
    if arch != h.architecture:
        raise BitstreamError(f"wrong model: the file was written by {h.model}, the decoder "
                             f"is a {arch}")
    if (int(model.N), int(model.M)) != (h.N, h.M):
        raise BitstreamError(
            f"wrong model: the file needs N={h.N}, M={h.M} (profile {h.profile or 'n/a'!r}), "
            f"the decoder has N={model.N}, M={model.M}")
    if model_fingerprint(model) != h.fingerprint:
        raise BitstreamError(
            f"wrong model: {h.model} q{h.quality} with other weights wrote this file (its entropy "
            f"coder tables differ); decode it with the model that encoded it")
    if model.training:
        raise ValueError("model must be in eval mode (call model.eval())")
    streams, pos = [], h.header_size
    for n in h.lengths:
        streams.append(bytes(blob[pos : pos + n]))
        pos += n
    x_hat = model.decompress([[s] for s in streams], h.shape)["x_hat"]
    return codecs.crop(x_hat[0], h.height, h.width).clamp(0, 1).cpu()
