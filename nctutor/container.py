"""The ``.nct`` file format: header, entropy-coded streams, checksum — one format for every stream.

Chapter *Transform coding with learned priors*, section *Real bitstreams*. The model's
``compress()`` gives byte strings (one per entropy model: ``[y]`` for the factorized prior,
``[y, z]`` for the hyperpriors) and the latent ``shape``; what a *file* adds is everything the
decoder must know before it can run ``decompress()``, and a way to refuse anything else.

Layout of format version 2 (version 4, which this nctutor writes, adds one byte: see *Version 3*
and *Version 4* below; all integers big-endian)::

    offset  size  field
    0       4     magic b"NCT1" (the same in every version; the next byte is the version)
    4       1     format version (2)
    5       1     kind: 0 image, 1 pframe, 2 video (their layouts below)
    6       1     coder of y: 0 table, 1 exact, 2 lattice (see below)
    7       1     quantizer: 0 scalar rounding, 1 hex (A2), 2 oct (A3*)
    8       1     padding mode (0: replicate, bottom and right)
    9       1     quality (1..8)
    10      4     original height H
    14      4     original width W
    18      2+2   latent shape from compress() (h, w)
    22      2+2   channel widths N, M of the model
    26      4     fingerprint: CRC32 of the model's integer CDF tables (wrong-model check)
    30      1+1   lengths of the model name and profile name (ASCII, at most 48 each)
    32      …     model name, profile name
    …       4     number of streams n
    …       4·n   stream lengths
    …       4     CRC32 (zlib.crc32) of every header byte before it *and* of the payload
    …       …     payload: the n streams, concatenated

*Kind* says what the streams hold and in which order: for an image, those of ``compress()``
(``[y]`` or ``[y, z]``, ``n`` fixed by the model). The stream table holds any number of streams,
so that the other kinds (a video, one stream per group of frames; a P-frame, its motion, ``y``,
``z`` and switching bits) can use the same layout. *Coder* says how ``y`` is entropy-coded:
``table`` is CompressAI's rANS with its precomputed CDF tables (``GaussianConditional``, or
``EntropyBottleneck`` for the factorized prior), what the CompressAI classes write; ``exact`` is
:func:`nctutor.entropy.gaussian.encode_gaussian`, one quantized Gaussian per symbol, written by
the twins of :mod:`nctutor.codecs.exact` (hyperpriors only). ``z`` is coded with CompressAI's
``EntropyBottleneck`` in both. *Quantizer* says how the latents were made integers: ``scalar``
is CompressAI's ``round(y - μ)``; other codes are kept for the lattice quantizers of the chapter
*Uniform scalar and lattice vector quantization*.

*Version 3* is version 2 with one more byte after the quantizer: the latent shift's steps, the
index of ``ρ_h`` in the high four bits and of ``ρ_f`` in the low four
(:data:`nctutor.codecs.latent.MAIN_STEPS`, :data:`~nctutor.codecs.latent.SIDE_STEPS`; 0: no
shift); every byte after it moves by one. It is written for ``coder`` = lattice, the codec of
:mod:`nctutor.codecs.latent` (chapter *Lattices and the latent shift on a trained codec*), whose
``y`` stream is laid out in :mod:`nctutor.entropy.cells`; other files stay version 2 (a version
3 file of another coder, or a version 2 file of the lattice coder, is refused as corrupted).

*Version 4* (written by this nctutor for images and P-frames) has the layout of version 3 for
every image coder (the steps byte is 0 unless the coder is lattice) and of version 2 for a
P-frame; what changes is how the probabilities are computed. In versions 2 and 3, ``h_s`` and
the code-space predictor ran as float networks and CompressAI's ``update()`` made the CDF
tables in float32: their last bits depend on the CPU's kernels and the thread count, so such a
file decodes only on the kind of machine that wrote it (elsewhere its CRC or fingerprint refuses
it). In version 4 the encoder and the decoder run those networks as integer networks and make
the tables in portable arithmetic (:mod:`nctutor.entropy.integer`; book section *Transform
coding with learned priors → Decoding on another machine*): a version-4 file decodes to the
same symbols on any machine. Versions 1-3 are still decoded, with the float networks and tables
they were written with.

*One nested piece.* An ``exact`` ``y`` stream is not raw ANS words: it starts with its own small
preamble, the alphabet ``[lo, hi]`` (two varints) and a CRC32 of the *symbols* (layout in
:mod:`nctutor.entropy.gaussian`). That CRC is not redundant with the file's: the file's CRC
proves the bytes are the ones the encoder wrote, but ANS decoding with scales that differ in one
bit from the encoder's (``h_s`` run on another machine, or by a GPU's nondeterministic
convolution) silently yields other symbols, and only a check of the decoded symbols sees that.

*Kind 2, a video* (version 2; written by :func:`encode_video` for the binary video codec
:mod:`nctutor.codecs.video`) has its own fields after the kind byte, then the same names,
stream table, CRC and payload::

    offset  size  field
    0       4     magic b"NCT1"
    4       1     format version (2)
    5       1     kind (2: video)
    6       1     order of the modulator across frames (0, 1, 2: the model's, see MODELS)
    7       1     padding mode (0: replicate, bottom and right)
    8       2+2   channel widths N, C of the model
    12      2     kept channels K (1..C): the rate
    14      2     group length T (1..MAX_GROUP): frames coded together
    16      4     number of frames F (1..MAX_FRAMES)
    20      4+4   frame height H, width W
    28      4     fingerprint: :func:`nctutor.codecs.video.fingerprint` (CRC32 of g_s's weights)
    32      1+1   lengths of the model name and profile name (ASCII, at most 48 each)
    34      …     model name, profile name
    …       4     number of streams n = ceil(F / T)
    …       4·n   stream lengths
    …       4     CRC32 of every header byte before it and of the payload
    …       …     payload: one stream of :mod:`nctutor.entropy.binary` per group, in order

Group ``g`` holds frames ``g·T`` to ``min((g+1)·T, F) - 1`` (the last group may be shorter); its
bits have the shape ``(frames, K, ceil(H/16), ceil(W/16))`` and decode alone, so a decoder holds
one group at a time. The latent size is not stored: ``H``, ``W`` imply it. Every group is at most
:data:`MAX_PIXELS` pixels in all (``T·H·W``), which bounds the decoder's memory like an image's.

*Kind 1, a P-frame* (version 4, the layout of version 2; written by :func:`encode_pframe` for
the conditional coders of :mod:`nctutor.codecs.conditional`, chapter *Conditional coding in
practice*) codes one frame given a reference frame that the decoder already has (a decoded
previous frame, bit for bit)::

    offset  size  field
    0       4     magic b"NCT1"
    4       1     format version (4; 2 before integer entropy parameters)
    5       1     kind (1: pframe)
    6       1     switch between xGDC's two reconstructions (:data:`SWITCHES`): 0 none (the other
                  coders), 1 d (x̂_d only), 2 g (x̂_g only), 3 frame (one bit), 4 quadtree
    7       1     padding mode (0: replicate, bottom and right, to multiples of 64)
    8       1     quality (1..8)
    9       2+2   channel widths N, M of the coder's core
    13      4+4   frame height H, width W
    21      2+2   latent shape from compress() (h, w) = (ceil(H/64), ceil(W/64))
    25      4     number of switching bits (0 for none, d, g; 1 for frame)
    29      4     fingerprint: :func:`coder_fingerprint` of the coder
    33      4     reference fingerprint: :func:`reference_fingerprint` of the reference frame
    37      1+1   lengths of the model name and profile name (ASCII, at most 48 each)
    39      …     model name (one of :data:`nctutor.codecs.conditional.CODERS`), profile name
    …       4     number of streams n (4)
    …       4·4   stream lengths: motion, y, z, side
    …       4     CRC32 of every header byte before it and of the payload
    …       …     payload: the motion vectors (:func:`nctutor.codecs.pframe.encode_motion`),
                  ``y`` and ``z`` of the coder's ``compress``, the switching bits
                  (:func:`nctutor.codecs.conditional.pack_bits`; empty without switching)

The reference is not in the file: the decoder must be given the *same* frame, as 8-bit values
(the PNG the decoder of the reference wrote). Its fingerprint, a CRC32 of its size and of its
8-bit pixels, lets the decoder refuse any other frame with a clear
:class:`ReferenceMismatchError` instead of decoding garbage.

Version 1 (``.nct`` files written before the coders were named in the header, e.g. by the first
shipped weights) is still read, as ``kind`` image, ``coder`` table, ``quantizer`` scalar. Its
layout::

    0  magic b"NCT1"    4  version (1)    5  padding mode    6  quality    7  number of streams n
    8  then H, W, latent shape, N, M, fingerprint, the name lengths and names as in version 2
       (2 bytes earlier), the n stream lengths (no count before them), CRC32, payload

Padding: the image is padded on the right and bottom to a multiple of the model's stride
(:data:`nctutor.codecs.STRIDES`) by *replicating* its last row and column (a flat border costs
fewer bits than a black one); the decoder crops the first H rows and W columns back.

Robustness: :func:`read_header` first checks the magic and the version (a version above
:data:`VERSION` is refused as written by a newer nctutor), then the file's structure — the stream
lengths add up to exactly the bytes that follow, and the CRC — then every field: its range, that
kind, coder and quantizer are known (else: written by a newer nctutor), that the latent shape is
the one H, W and the model imply; all before the model or any tensor is touched. A file that
claims more than :data:`MAX_SIDE` pixels a side or :data:`MAX_PIXELS` in all is refused (the
encoder refuses to write one); a P-frame also a switch that its coder does not make, a
number of switching bits its size cannot hold, or other than 4 streams; a video also more than
:data:`MAX_GROUP` frames a group, :data:`MAX_FRAMES` frames in all, or another number of streams
than its groups. An unknown kind is refused right after the version (its layout is unknown).
Everything wrong with a file raises :class:`BitstreamError`.

Memory: the whole image goes through the model at once (no tiling); peak memory grows like
N·H·W. For the 2048×1363 CLIC photo with the smoke-size mean-scale model (N=16, M=24) on CPU,
encoding and decoding add about 0.15-0.25 GB to the ~1.2 GB that importing torch already takes
(measured with ``resource.getrusage``, see ``tests/test_container.py``); the ``gpu`` widths
(N=128, M=192) need roughly eight times that.
"""

from __future__ import annotations

import copy
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial

import torch
from compressai.entropy_models import EntropyModel

from . import codecs, config
from .codecs import architecture_of, latent_shape, model_fingerprint, num_streams
from .codecs import conditional as cc
from .codecs import pframe as pf
from .codecs.exact import EXACT_CLASSES, exact, has_exact_coder
from .codecs.latent import MAIN_STEPS, SIDE_STEPS, LatentCodec, has_latent_codec
from .codecs.video import MODELS as VIDEO_MODELS
from .codecs.video import STRIDE as VIDEO_STRIDE
from .codecs.video import BinaryVideoCodec
from .codecs.video import fingerprint as video_fingerprint
from .entropy import integer
from .errors import BitstreamError

MAGIC = b"NCT1"
VERSION = 4
#: The first version whose probabilities come from integer networks and portable tables.
PORTABLE = 4
#: Models without a portable entropy path: CompressAI's ``mbt2018`` (the baseline of chapter
#: *Predicting codes from their neighbours*) convolves its context inside CompressAI's own
#: autoregressive loop, in float; its files stay version 2, for the kind of machine that wrote them.
FLOAT_ONLY = ("mbt2018",)
PAD_REPLICATE = 0
MAX_SIDE = 16384
MAX_PIXELS = 50_000_000
MAX_NAME = 48
#: Most frames in a group (``T``) and in a file (``F``) of a video.
MAX_GROUP = 64
MAX_FRAMES = 100_000

#: The codes of the header's enumerated fields: the name at index ``code``. Codes beyond these
#: tuples are reserved (a file that uses one was written by a newer nctutor).
KINDS = ("image", "pframe", "video")
#: How a P-frame file picks between xGDC's two reconstructions (its ``switch`` byte): ``none``
#: for the coders with one reconstruction; ``d`` (``x̂_d`` everywhere), ``g`` (``x̂_g``), ``frame``
#: (one bit: the smaller Lagrangian cost) and ``quadtree`` (a block per leaf) for xGDC.
SWITCHES = ("none", "d", "g", "frame", "quadtree")
#: The stride a P-frame is padded to (the core's ``z`` has 64 pixels a sample).
PFRAME_STRIDE = 64
CODERS = ("table", "exact", "lattice")
QUANTIZERS = ("scalar", "hex", "oct")

_FIXED = struct.Struct(">4sBBBBBBIIHHHHIBB")  # version 2: everything up to the two names
_FIXED_V3 = struct.Struct(">4sBBBBBBBIIHHHHIBB")  # versions 3, 4: the same with the shift steps
_FIXED_V1 = struct.Struct(">4sBBBBIIHHHHIBB")  # version 1: the same without kind/coder/quantizer
_U32 = struct.Struct(">I")
_VIDEO = struct.Struct(">4sBBBBHHHHIIIIBB")  # kind 2 (video): everything up to the two names
_PFRAME = struct.Struct(">4sBBBBBHHIIHHIIIBB")  # kind 1 (pframe): everything up to the two names


@dataclass(frozen=True)
class Header:
    """The parsed header of an ``.nct`` file (see the module docstring for the layout).

    Attributes:
        version: format version (1, 2 or 3).
        kind: what the file holds (``"image"``).
        coder: how ``y`` is coded: ``"table"`` (CompressAI's rANS tables) or ``"exact"``
            (:mod:`nctutor.entropy.gaussian`).
        quantizer: how the latents were made integers (``"scalar"``: rounding).
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
        steps: the latent shift's step indices ``(i_h, i_f)`` (version 3; ``(0, 0)``: none).

    Defined in book section *Transform coding with learned priors → Real bitstreams* (the page
    displays one).
    """

    version: int
    kind: str
    coder: str
    quantizer: str
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
    steps: tuple[int, int] = (0, 0)

    @property
    def architecture(self) -> str:
        """Registry name of the architecture (``"compressai:"`` prefix removed)."""
        return architecture_of(self.model)

    @property
    def payload_size(self) -> int:
        """Total bytes of the entropy-coded streams."""
        return sum(self.lengths)


@dataclass(frozen=True)
class VideoHeader:
    """The parsed header of a video ``.nct`` file (kind 2; the layout in the module docstring).

    Attributes:
        version: format version (2).
        kind: ``"video"``.
        model: model name, one of :data:`nctutor.codecs.video.MODELS`.
        profile: profile the model was made with.
        order: the modulator's order across frames (0, 1 or 2).
        padding: padding mode (0: replicate at the bottom and right).
        N, C: channel widths of the model.
        channels: kept channels ``K`` (the rate).
        group: group length ``T``.
        frames: number of frames ``F``.
        height, width: size of the frames.
        fingerprint: :func:`nctutor.codecs.video.fingerprint` of the encoder's model.
        lengths: byte length of each group's stream.
        header_size: bytes before the payload.

    Used by the binary video codec's command line (book section *A binary video codec with
    delta-sigma modulation → Real bytes*); no page calls it.
    """

    version: int
    kind: str
    model: str
    profile: str
    order: int
    padding: int
    N: int
    C: int
    channels: int
    group: int
    frames: int
    height: int
    width: int
    fingerprint: int
    lengths: tuple[int, ...]
    header_size: int

    @property
    def shape(self) -> tuple[int, int]:
        """The latent size ``(h, w)`` of every frame: ``H`` and ``W`` over the stride, rounded
        up (the frames are padded)."""
        return -(-self.height // VIDEO_STRIDE), -(-self.width // VIDEO_STRIDE)

    @property
    def group_sizes(self) -> list[int]:
        """The number of frames of each group: ``T``, …, ``T``, then the rest (``F`` mod ``T``,
        when not 0)."""
        return [min(self.group, self.frames - first)
                for first in range(0, self.frames, self.group)]

    @property
    def payload_size(self) -> int:
        """Total bytes of the entropy-coded streams."""
        return sum(self.lengths)


@dataclass(frozen=True)
class PFrameHeader:
    """The parsed header of a P-frame ``.nct`` file (kind 1; the layout in the module docstring).

    Attributes:
        version: format version (2).
        kind: ``"pframe"``.
        model: coder name, one of :data:`nctutor.codecs.conditional.CODERS`.
        profile: profile the coder was made with.
        quality: quality index 1..8 (the λ of the coder's training and of the switching).
        switch: one of :data:`SWITCHES`.
        padding: padding mode (0: replicate at the bottom and right).
        N, M: channel widths of the coder's core.
        height, width: size of the frame (and of its reference).
        shape: latent shape passed to ``decompress()``.
        side_bits: number of switching bits in the side stream.
        fingerprint: :func:`coder_fingerprint` of the encoder's coder.
        reference: :func:`reference_fingerprint` of the reference frame.
        lengths: byte lengths of the four streams (motion, y, z, side).
        header_size: bytes before the payload.

    Defined in book section *Conditional coding in practice → Real bitstreams*.
    """

    version: int
    kind: str
    model: str
    profile: str
    quality: int
    switch: str
    padding: int
    N: int
    M: int
    height: int
    width: int
    shape: tuple[int, int]
    side_bits: int
    fingerprint: int
    reference: int
    lengths: tuple[int, ...]
    header_size: int

    @property
    def payload_size(self) -> int:
        """Total bytes of the four streams."""
        return sum(self.lengths)

    @property
    def split(self) -> dict[str, int]:
        """Bytes of the motion, of the coder's latents (``y`` and ``z``) and of the switching
        bits, and of the header (the rest of the file)."""
        motion, y, z, side = self.lengths
        return {"motion": motion, "latent": y + z, "side": side, "header": self.header_size}


# --------------------------------------------------------------------------- header


def _pack_header(h: Header) -> bytes:
    """Every header byte of version 2, 3 or 4 (``h.version``) before the CRC."""
    name, profile = h.model.encode("ascii"), h.profile.encode("ascii")
    codes = (KINDS.index(h.kind), CODERS.index(h.coder), QUANTIZERS.index(h.quantizer))
    rest = (h.padding, h.quality, h.height, h.width, h.shape[0], h.shape[1], h.N, h.M,
            h.fingerprint, len(name), len(profile))
    if h.version >= 3:
        fixed = _FIXED_V3.pack(MAGIC, h.version, *codes, (h.steps[0] << 4) | h.steps[1], *rest)
    else:
        fixed = _FIXED.pack(MAGIC, 2, *codes, *rest)
    table = _U32.pack(len(h.lengths)) + b"".join(_U32.pack(n) for n in h.lengths)
    return fixed + name + profile + table


def _name(raw: bytes, what: str) -> str:
    if not all(0x21 <= b < 0x7F for b in raw):
        raise BitstreamError(f"corrupted file: the {what} is not printable ASCII")
    return raw.decode("ascii")


def _known(code: int, names: tuple[str, ...], what: str) -> str:
    """The name of an enumerated header field, or the error of a file from a newer nctutor."""
    if code >= len(names):
        raise BitstreamError(f"unknown {what} {code} (this nctutor knows {', '.join(names)}): "
                             f"the file was written by a newer nctutor; upgrade nctutor to "
                             f"decode it")
    return names[code]


def _truncated(blob: bytes, need: int) -> None:
    if len(blob) < need:
        raise BitstreamError(f"truncated file: {len(blob)} bytes, the header needs at least "
                             f"{need}")


def _stream_table(blob: bytes, table: int, n: int) -> tuple[tuple[int, ...], int]:
    """The ``n`` stream lengths at offset ``table`` and the header size, once the lengths add up
    to the bytes after the header and the CRC holds (the file's structure, before any field)."""
    header_size = table + 4 * n + 4
    _truncated(blob, header_size)  # also bounds n before any length is read
    lengths = struct.unpack_from(f">{n}I", blob, table)
    payload = len(blob) - header_size
    if sum(lengths) != payload:
        what = "truncated" if sum(lengths) > payload else "corrupted (trailing bytes)"
        raise BitstreamError(f"{what} file: the streams should take {sum(lengths)} bytes, "
                             f"{payload} follow the header")
    (stored_crc,) = _U32.unpack_from(blob, header_size - 4)
    crc = zlib.crc32(blob[header_size:], zlib.crc32(blob[: header_size - 4]))
    if crc != stored_crc:
        raise BitstreamError("corrupted file: CRC32 mismatch")
    return tuple(lengths), header_size


def read_header(blob: bytes) -> Header | VideoHeader | PFrameHeader:
    """Parse and validate the header of ``blob`` (the whole file, version 1 to 4): every check
    of the module docstring, CRC included, without decoding anything. Raises
    :class:`BitstreamError`. An image file gives a :class:`Header`, a video file (kind 2) a
    :class:`VideoHeader`, a P-frame file (kind 1) a :class:`PFrameHeader`.

    Defined in book section *Transform coding with learned priors → Real bitstreams*.
    """
    if not isinstance(blob, bytes | bytearray | memoryview):
        raise TypeError(f"blob must be bytes, got {type(blob).__name__}")
    blob = bytes(blob)
    if len(blob) < 4 or blob[:4] != MAGIC:
        raise BitstreamError("not an nctutor file (bad magic number; expected b'NCT1')")
    _truncated(blob, 5)
    version = blob[4]
    if version > VERSION:
        raise BitstreamError(f"format version {version}: the file was written by a newer "
                             f"nctutor (this one reads versions 1 to {VERSION}); upgrade nctutor "
                             f"to decode it")
    if version < 1:
        raise BitstreamError(f"corrupted file: unsupported format version {version}")
    if version >= 2:  # the kind fixes the layout of what follows: check it first
        _truncated(blob, 6)
        if blob[5] == KINDS.index("video"):
            return _read_video_header(blob)
        if blob[5] == KINDS.index("pframe"):
            return _read_pframe_header(blob)
        if blob[5] != KINDS.index("image"):
            raise BitstreamError(f"unknown kind {blob[5]} (this nctutor knows image (0), pframe "
                                 f"(1) and video (2)): the file was written by a newer nctutor; "
                                 f"upgrade nctutor to decode it")

    # structure: the fixed fields, the names, the stream table, the CRC
    if version == 1:
        _truncated(blob, _FIXED_V1.size)
        (_, _, padding, quality, n, height, width, sh, sw, N, M, fingerprint, name_len,
         profile_len) = _FIXED_V1.unpack_from(blob)
        kind, coder, quantizer, steps_byte = 0, 0, 0, 0  # image, table, scalar, no shift
        start = _FIXED_V1.size
        table = start + name_len + profile_len  # the stream lengths follow the names
    else:
        fixed = _FIXED if version == 2 else _FIXED_V3
        _truncated(blob, fixed.size)
        fields = list(fixed.unpack_from(blob))
        steps_byte = fields.pop(5) if version >= 3 else 0
        (_, _, kind, coder, quantizer, padding, quality, height, width, sh, sw, N, M, fingerprint,
         name_len, profile_len) = fields
        start = fixed.size
        _truncated(blob, start + name_len + profile_len + 4)
        (n,) = _U32.unpack_from(blob, start + name_len + profile_len)
        table = start + name_len + profile_len + 4
    lengths, header_size = _stream_table(blob, table, n)

    # fields: known codes, ranges, and what the model implies
    kind = _known(kind, KINDS, "kind")
    coder = _known(coder, CODERS, "coder")
    quantizer = _known(quantizer, QUANTIZERS, "quantizer")
    if padding != PAD_REPLICATE:
        raise BitstreamError(f"corrupted file: unknown padding mode {padding}")
    if not 1 <= quality <= len(codecs.LAMBDAS):
        raise BitstreamError(f"corrupted file: quality {quality} is not in 1..8")
    if not (1 <= name_len <= MAX_NAME and profile_len <= MAX_NAME):
        raise BitstreamError("corrupted file: implausible model or profile name length")
    model = _name(blob[start : start + name_len], "model name")
    profile = _name(blob[start + name_len : start + name_len + profile_len], "profile name")
    try:
        arch = architecture_of(model)
    except ValueError:
        raise BitstreamError(f"unknown model {model!r} in the file") from None
    if n != num_streams(arch):
        raise BitstreamError(f"corrupted file: {n} streams, {model} writes {num_streams(arch)}")
    if coder == "exact" and not has_exact_coder(arch):
        raise BitstreamError(f"corrupted file: {model} has no exact coder (no Gaussian for y)")
    if coder == "lattice" and not has_latent_codec(arch):
        raise BitstreamError(f"corrupted file: {model} has no lattice coder")
    if version in (2, 3) and (version == 3) != (coder == "lattice"):
        raise BitstreamError(f"corrupted file: version {version} with the {coder} coder (the "
                             f"lattice coder writes version 3, the others version 2)")
    if coder != "lattice" and (quantizer != "scalar" or steps_byte):
        raise BitstreamError(f"corrupted file: quantizer {quantizer} or a latent shift with the "
                             f"{coder} coder")
    steps = (steps_byte >> 4, steps_byte & 15)
    if steps[0] >= len(MAIN_STEPS) or steps[1] >= len(SIDE_STEPS):
        raise BitstreamError(f"corrupted file: shift step indices {steps}")
    if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE and height * width <= MAX_PIXELS):
        raise BitstreamError(f"implausible image size {height}×{width} (at most {MAX_SIDE} a side "
                             f"and {MAX_PIXELS} pixels)")
    if (sh, sw) != latent_shape(arch, height, width):
        raise BitstreamError(f"corrupted file: latent shape {(sh, sw)} does not fit a "
                             f"{height}×{width} image")
    if N < 1 or M < 1:
        raise BitstreamError("corrupted file: zero channel width")
    return Header(version=version, kind=kind, coder=coder, quantizer=quantizer, model=model,
                  quality=quality, profile=profile, height=height, width=width, padding=padding,
                  shape=(sh, sw), N=N, M=M, fingerprint=fingerprint, lengths=lengths,
                  header_size=header_size, steps=steps)


def _pack_video_header(h: VideoHeader) -> bytes:
    """Every header byte of a video file before the CRC."""
    name, profile = h.model.encode("ascii"), h.profile.encode("ascii")
    fixed = _VIDEO.pack(MAGIC, 2, KINDS.index("video"), h.order, h.padding, h.N, h.C,
                        h.channels, h.group, h.frames, h.height, h.width, h.fingerprint,
                        len(name), len(profile))
    table = _U32.pack(len(h.lengths)) + b"".join(_U32.pack(n) for n in h.lengths)
    return fixed + name + profile + table


def _read_video_header(blob: bytes) -> VideoHeader:
    """:func:`read_header` of a video file (kind 2): the structure, then every field."""
    _truncated(blob, _VIDEO.size)
    (_, version, _, order, padding, N, C, K, T, F, height, width, fingerprint, name_len,
     profile_len) = _VIDEO.unpack_from(blob)
    start = _VIDEO.size
    _truncated(blob, start + name_len + profile_len + 4)
    (n,) = _U32.unpack_from(blob, start + name_len + profile_len)
    lengths, header_size = _stream_table(blob, start + name_len + profile_len + 4, n)

    if version != 2:
        raise BitstreamError(f"corrupted file: a video in format version {version} (videos are "
                             f"version 2)")
    if padding != PAD_REPLICATE:
        raise BitstreamError(f"corrupted file: unknown padding mode {padding}")
    if not (1 <= name_len <= MAX_NAME and profile_len <= MAX_NAME):
        raise BitstreamError("corrupted file: implausible model or profile name length")
    model = _name(blob[start : start + name_len], "model name")
    profile = _name(blob[start + name_len : start + name_len + profile_len], "profile name")
    if model not in VIDEO_MODELS:
        raise BitstreamError(f"unknown video model {model!r} in the file (this nctutor knows "
                             f"{', '.join(VIDEO_MODELS)})")
    if order != VIDEO_MODELS[model]:
        raise BitstreamError(f"corrupted file: order {order}, {model} is of order "
                             f"{VIDEO_MODELS[model]}")
    if N < 1 or C < 16 or C % 16:
        raise BitstreamError(f"corrupted file: channel widths N={N}, C={C} (C a multiple of 16)")
    if not 1 <= K <= C:
        raise BitstreamError(f"corrupted file: {K} kept channels of C={C}")
    if not (1 <= T <= MAX_GROUP and 1 <= F <= MAX_FRAMES):
        raise BitstreamError(f"implausible video: groups of {T} frames, {F} frames (1 to "
                             f"{MAX_GROUP} a group, at most {MAX_FRAMES} in all)")
    if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE
            and T * height * width <= MAX_PIXELS):
        raise BitstreamError(f"implausible video size: groups of {T} frames of {height}×{width} "
                             f"(at most {MAX_SIDE} a side and {MAX_PIXELS} pixels a group)")
    if n != -(-F // T):
        raise BitstreamError(f"corrupted file: {n} streams, {F} frames in groups of {T} make "
                             f"{-(-F // T)}")
    return VideoHeader(version=version, kind="video", model=model, profile=profile, order=order,
                       padding=padding, N=N, C=C, channels=K, group=T, frames=F, height=height,
                       width=width, fingerprint=fingerprint, lengths=lengths,
                       header_size=header_size)


def _pack_pframe_header(h: PFrameHeader) -> bytes:
    """Every header byte of a P-frame file before the CRC."""
    name, profile = h.model.encode("ascii"), h.profile.encode("ascii")
    fixed = _PFRAME.pack(MAGIC, h.version, KINDS.index("pframe"), SWITCHES.index(h.switch),
                         h.padding, h.quality, h.N, h.M, h.height, h.width, h.shape[0], h.shape[1],
                         h.side_bits, h.fingerprint, h.reference, len(name), len(profile))
    table = _U32.pack(len(h.lengths)) + b"".join(_U32.pack(n) for n in h.lengths)
    return fixed + name + profile + table


def _quadtree_bits(height: int, width: int) -> tuple[int, int]:
    """The fewest and the most bits :func:`nctutor.codecs.conditional.quadtree` can write for a
    ``height × width`` frame: two a top block (one leaf each), or at most two a node above the
    smallest size and one a smallest block, every position of every level counted."""
    tiles = [-(-height // s) * -(-width // s) for s in cc.QT_SIZES]
    return 2 * tiles[0], 2 * sum(tiles[:-1]) + tiles[-1]


def _read_pframe_header(blob: bytes) -> PFrameHeader:
    """:func:`read_header` of a P-frame file (kind 1): the structure, then every field."""
    _truncated(blob, _PFRAME.size)
    (_, version, _, switch, padding, quality, N, M, height, width, sh, sw, side_bits, fingerprint,
     reference, name_len, profile_len) = _PFRAME.unpack_from(blob)
    start = _PFRAME.size
    _truncated(blob, start + name_len + profile_len + 4)
    (n,) = _U32.unpack_from(blob, start + name_len + profile_len)
    lengths, header_size = _stream_table(blob, start + name_len + profile_len + 4, n)

    if version not in (2, PORTABLE):
        raise BitstreamError(f"corrupted file: a P-frame in format version {version} (P-frames "
                             f"are version 2 or {PORTABLE})")
    switch = _known(switch, SWITCHES, "switch mode")
    if padding != PAD_REPLICATE:
        raise BitstreamError(f"corrupted file: unknown padding mode {padding}")
    if not 1 <= quality <= len(codecs.LAMBDAS):
        raise BitstreamError(f"corrupted file: quality {quality} is not in 1..8")
    if not (1 <= name_len <= MAX_NAME and profile_len <= MAX_NAME):
        raise BitstreamError("corrupted file: implausible model or profile name length")
    model = _name(blob[start : start + name_len], "model name")
    profile = _name(blob[start + name_len : start + name_len + profile_len], "profile name")
    if model not in cc.CODERS:
        raise BitstreamError(f"unknown P-frame model {model!r} in the file (this nctutor knows "
                             f"{', '.join(cc.CODERS)})")
    allowed = SWITCHES[1:] if model == cc.XGDC.name else ("none",)
    if switch not in allowed:
        raise BitstreamError(f"corrupted file: switch {switch!r} with {model} (it makes "
                             f"{' or '.join(allowed)})")
    if N < 1 or M < 1:
        raise BitstreamError("corrupted file: zero channel width")
    if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE and height * width <= MAX_PIXELS):
        raise BitstreamError(f"implausible frame size {height}×{width} (at most {MAX_SIDE} a side "
                             f"and {MAX_PIXELS} pixels)")
    if (sh, sw) != (-(-height // PFRAME_STRIDE), -(-width // PFRAME_STRIDE)):
        raise BitstreamError(f"corrupted file: latent shape {(sh, sw)} does not fit a "
                             f"{height}×{width} frame")
    if n != 4:
        raise BitstreamError(f"corrupted file: {n} streams, a P-frame has 4 (motion, y, z, side)")
    fewest, most = {"frame": (1, 1), "quadtree": _quadtree_bits(height, width)}.get(switch, (0, 0))
    if not fewest <= side_bits <= most:
        raise BitstreamError(f"corrupted file: {side_bits} switching bits with switch {switch!r} "
                             f"for a {height}×{width} frame (it writes {fewest} to {most})")
    if lengths[3] != -(-side_bits // 8):
        raise BitstreamError(f"corrupted file: a side stream of {lengths[3]} bytes for "
                             f"{side_bits} bits")
    if not all(lengths[:3]):
        raise BitstreamError("corrupted file: an empty motion, y or z stream")
    return PFrameHeader(version=version, kind="pframe", model=model, profile=profile,
                        quality=quality, switch=switch, padding=padding, N=N, M=M, height=height,
                        width=width, shape=(sh, sw), side_bits=side_bits,
                        fingerprint=fingerprint, reference=reference, lengths=lengths,
                        header_size=header_size)


# --------------------------------------------------------------------------- encode / decode


def _coding(model: torch.nn.Module, arch: str, coder: str
            ) -> tuple[torch.nn.Module, Callable, Callable]:
    """The network that codes, and ``compress`` and ``decompress`` that code ``y`` of ``model``
    with ``coder``.

    ``exact``: those of the model's exact twin (:func:`nctutor.codecs.exact.exact`; a twin given
    is used as it is). ``table``: CompressAI's own, also when the model given is a twin.
    """
    is_twin = isinstance(model, tuple(EXACT_CLASSES.values()))
    if coder == "exact":
        twin = model if is_twin else exact(model)
        return twin, twin.compress, twin.decompress
    if is_twin:  # the methods of the CompressAI class that the twin extends
        base = codecs.ARCHITECTURES[arch]
        return model, partial(base.compress, model), partial(base.decompress, model)
    return model, model.compress, model.decompress


def _entropy_path(model: torch.nn.Module, version: int) -> torch.nn.Module:
    """The model whose tables code a file of format ``version``: ``model`` itself with portable
    tables (:func:`nctutor.entropy.integer.portable_tables`, in place) from version 4 on; for
    older files a copy with CompressAI's float tables (``update(force=True)``), as they were
    written. Raises ``ValueError`` for a model whose entropy coders are not ready (no
    ``update()`` yet), as the fingerprint did before version 4: until then a hyperprior has no
    scale table to make portable tables from."""
    if any(isinstance(m, EntropyModel) and m._offset.numel() == 0 for m in model.modules()):
        raise ValueError("the model's entropy coders are not ready: call model.update()")
    if version >= PORTABLE:
        return integer.portable_tables(model)
    legacy = copy.deepcopy(model)
    legacy.update(force=True)
    return legacy


def _networks(model: torch.nn.Module, version: int):
    """The context in which a file of ``version`` is coded: the integer networks from version 4
    on (:func:`nctutor.entropy.integer.integer_entropy`), the float ones before."""
    return integer.integer_entropy(model) if version >= PORTABLE else nullcontext()


def _older(version: int) -> str:
    """What to add to a wrong-model refusal of a file of ``version``."""
    if version >= PORTABLE:
        return ""
    return (f", or it was written on another kind of machine: files of format version "
            f"{version} take their probabilities from float networks and decode only on the "
            f"kind of machine that wrote them (re-encode the image with this nctutor: it writes "
            f"version {VERSION}, which decodes anywhere)")


@torch.no_grad()
def encode_image(model: torch.nn.Module, x: torch.Tensor, model_name: str, quality: int,
                 profile: str = "", coder: str = "table", quantizer: str = "scalar",
                 shift: bool = False, search: str = "secant",
                 portable: bool | None = None) -> bytes:
    """Compress the image ``x`` (``(3, H, W)`` or ``(1, 3, H, W)``, values in ``[0, 1]``) into a
    complete file: pad to the model's stride, ``compress``, header, CRC.

    ``model_name``/``quality``/``profile`` are written to the header so that a decoder can find the
    same model (``nctutor.zoo.load(model_name, quality, profile)``); ``model`` must be in eval mode
    with ``update()`` done. ``coder`` is ``"table"`` (CompressAI's tables) or ``"exact"`` (the
    hyperpriors only: ``y`` coded by :mod:`nctutor.entropy.gaussian`; the model is converted with
    :func:`nctutor.codecs.exact.exact` on each call, unless it already is an exact twin), or
    ``"lattice"``: :class:`nctutor.codecs.latent.LatentCodec` with ``quantizer`` (``"scalar"``,
    ``"hex"``, ``"oct"``), the latent ``shift`` and its ``search``; a lattice quantizer or a
    shift implies ``coder="lattice"`` (chapter *Lattices and the latent shift on a trained
    codec*). Defined in book section *Transform coding with learned priors → Real bitstreams*.

    ``portable`` (default: wherever the model allows it) writes format version 4, whose
    probabilities every machine computes alike (:mod:`nctutor.entropy.integer`); ``False``
    writes what nctutor wrote before (version 2, or 3 for the lattice coder: float networks and
    tables, a file that decodes only on the kind of machine that wrote it), kept so that the
    book can show the difference (book section *Transform coding with learned priors → Decoding
    on another machine*) and measure what the
    integer path costs. CompressAI's ``mbt2018`` has no portable path (:data:`FLOAT_ONLY`).
    """
    arch = architecture_of(model_name)
    if portable is None:
        portable = arch not in FLOAT_ONLY
    if portable and arch in FLOAT_ONLY:
        raise ValueError(f"{arch} has no portable entropy path (CompressAI's autoregressive loop "
                         f"runs its own float convolutions): use portable=False")
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError("x must be a floating-point torch.Tensor")
    if x.dim() == 4 and x.shape[0] == 1:
        x = x[0]
    if x.dim() != 3 or x.shape[0] != 3:
        raise ValueError(f"x must have shape (3, H, W) or (1, 3, H, W), got {tuple(x.shape)}")
    if not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise ValueError("x must hold finite values in [0, 1]")
    if codecs.architecture_of_model(model) != arch:
        raise ValueError(f"model is a {type(model).__name__}, not a {arch}")
    codecs.lmbda(quality)  # validates quality
    if quantizer not in QUANTIZERS:
        raise ValueError(f"quantizer must be one of {', '.join(QUANTIZERS)}, got {quantizer!r}")
    if (quantizer != "scalar" or shift) and coder == "table":
        coder = "lattice"
    if coder not in CODERS:
        raise ValueError(f"coder must be one of {', '.join(CODERS)}, got {coder!r}")
    if coder == "exact" and (quantizer != "scalar" or shift):
        raise ValueError("a lattice quantizer or the latent shift needs coder='lattice'")
    version = VERSION if portable else 3 if coder == "lattice" else 2  # as before version 4
    if coder == "lattice" and not has_latent_codec(arch):
        raise ValueError(f"coder='lattice' wraps bmshj2018-factorized or mbt2018-mean, not {arch}")
    if coder == "exact" and not has_exact_coder(arch):
        raise ValueError(f"coder='exact' codes y with the hyperprior's Gaussians; {arch} has "
                         f"none: use coder='table'")
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
    model = _entropy_path(model, version)
    fingerprint = model_fingerprint(model)  # the same for an exact twin: it copies the tables
    if coder == "lattice":
        net, compress = model, LatentCodec(model, quantizer, shift, search, portable).compress
    else:
        net, compress, _ = _coding(model, arch, coder)
    device = next(model.parameters()).device
    with _networks(net, version):
        out = compress(codecs.pad(x[None].to(device), codecs.STRIDES[arch]))
    steps = tuple(out.get("steps", (0, 0)))
    streams = [bytes(s[0]) for s in out["strings"]]
    shape = tuple(int(v) for v in out["shape"])
    if shape != latent_shape(arch, height, width):  # cannot happen with the registry's models
        raise RuntimeError(f"compress() returned shape {shape}, expected "
                           f"{latent_shape(arch, height, width)}")
    header = Header(version=version, kind="image", coder=coder,
                    quantizer=quantizer, steps=steps,
                    model=model_name, quality=quality, profile=profile, height=height,
                    width=width, padding=PAD_REPLICATE, shape=shape, N=int(model.N),
                    M=int(model.M), fingerprint=fingerprint, lengths=tuple(map(len, streams)),
                    header_size=0)
    head = _pack_header(header)
    payload = b"".join(streams)
    crc = zlib.crc32(payload, zlib.crc32(head))
    return head + _U32.pack(crc) + payload


@torch.no_grad()
def decode_image(blob: bytes, model: torch.nn.Module) -> torch.Tensor:
    """Decode a file made by :func:`encode_image` with ``model``: a float tensor ``(3, H, W)`` in
    ``[0, 1]`` on the CPU. The coder comes from the header (an ``exact`` file converts ``model``
    with :func:`nctutor.codecs.exact.exact` unless it is an exact twin already). Raises
    :class:`BitstreamError` for a damaged or foreign file, or when ``model`` is not the one that
    wrote it (architecture, widths or CDF tables differ).

    Decoding is deterministic: the same file and model give the same tensor on the same machine
    and thread count. An ``exact`` file also decodes to the same 8-bit image whatever thread
    counts the encoder and the decoder use (its twin runs ``h_s`` and ``g_s`` on one thread; see
    :mod:`nctutor.codecs.exact`; checked on every Kodak and CLIC image with the shipped weights in
    ``tests/test_container.py``). A ``table`` file is decoded by CompressAI's own ``decompress``
    at the caller's thread count: its symbols need only the same table index of each scale (a
    last-bit difference matters only at a table boundary), but the means and ``g_s``'s output
    may differ in the last float bits between thread counts, which changes a few 8-bit values
    per image (10 to 18 on the first Kodak images with the shipped weights, 1 and 2
    threads).
    Defined in book section *Transform coding with learned priors → Real bitstreams*.
    """
    h = read_header(blob)
    if h.kind != "image":
        how = ("decode_pframe and its reference frame (nctutor decompress --reference REF.png)"
               if h.kind == "pframe" else "decode_video (nctutor decompress reads either)")
        raise BitstreamError(f"the file holds a {h.kind} of {h.model}, not an image: decode it "
                             f"with {how}")
    arch = codecs.architecture_of_model(model)
    if arch != h.architecture:
        raise BitstreamError(f"wrong model: the file was written by {h.model}, the decoder "
                             f"is a {arch}")
    if (int(model.N), int(model.M)) != (h.N, h.M):
        raise BitstreamError(
            f"wrong model: the file needs N={h.N}, M={h.M} (profile {h.profile or 'n/a'!r}), "
            f"the decoder has N={model.N}, M={model.M}")
    model = _entropy_path(model, h.version)
    if model_fingerprint(model) != h.fingerprint:
        raise BitstreamError(
            f"wrong model: {h.model} q{h.quality} with other weights wrote this file (its entropy "
            f"coder tables differ); decode it with the model that encoded it{_older(h.version)}")
    if model.training:
        raise ValueError("model must be in eval mode (call model.eval())")
    streams, pos = [], h.header_size
    for n in h.lengths:
        streams.append(bytes(blob[pos : pos + n]))
        pos += n
    if h.coder == "lattice":
        net = model
        decompress = partial(LatentCodec(model, h.quantizer, portable=h.version >= PORTABLE
                                         ).decompress, steps=h.steps)
    else:
        net, _, decompress = _coding(model, arch, h.coder)
    with _networks(net, h.version):
        x_hat = decompress([[s] for s in streams], h.shape)["x_hat"]
    return codecs.crop(x_hat[0], h.height, h.width).clamp(0, 1).cpu()


# --------------------------------------------------------------------------- video


def _check_frame(x: torch.Tensor, index: int | str) -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"frame {index} must be a floating-point torch.Tensor")
    if x.dim() != 3 or x.shape[0] != 3:
        raise ValueError(f"frame {index} must have shape (3, H, W), got {tuple(x.shape)}")
    if not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise ValueError(f"frame {index} must hold finite values in [0, 1]")


@torch.no_grad()
def encode_video(model: BinaryVideoCodec, frames: Iterable[torch.Tensor], model_name: str,
                 profile: str, channels: int, group: int) -> bytes:
    """Compress ``frames`` (an iterable of ``(3, H, W)`` tensors in ``[0, 1]``, all the same
    size, or one ``(F, 3, H, W)`` tensor) into a complete video file: groups of ``group`` frames
    (the last one may be shorter), each coded by ``model.compress`` with its first ``channels``
    channels, header and CRC (layout in the module docstring).

    The frames are read one group at a time (a generator is never held whole: memory is one group
    of frames plus the coded bytes). ``model_name`` and ``profile`` are written to the header so
    that a decoder can find the same model (:func:`nctutor.zoo.video_model`); ``group`` is the
    model's training group length. Raises :class:`ValueError` for frames or settings the format
    cannot hold. Defined in book section *A binary video codec with delta-sigma modulation → Real
    bytes* (through :func:`nctutor.rd.binary_video.code_clip` and ``nctutor compress``).
    """
    if not isinstance(model, BinaryVideoCodec):
        raise TypeError(f"model must be a BinaryVideoCodec, got {type(model).__name__}")
    if VIDEO_MODELS.get(model_name) != model.order:
        raise ValueError(f"model_name must be one of {', '.join(VIDEO_MODELS)} and name the "
                         f"model's order {model.order}, got {model_name!r}")
    if not (len(profile) <= MAX_NAME and all(0x21 <= ord(c) < 0x7F for c in profile)):
        raise ValueError(f"profile must be printable ASCII without spaces, at most {MAX_NAME}")
    if isinstance(channels, bool) or not isinstance(channels, int) or not 1 <= channels <= model.C:
        raise ValueError(f"channels must be an int in 1..{model.C}, got {channels!r}")
    if isinstance(group, bool) or not isinstance(group, int) or not 1 <= group <= MAX_GROUP:
        raise ValueError(f"group must be an int in 1..{MAX_GROUP}, got {group!r}")
    if model.training:
        raise ValueError("model must be in eval mode (call model.eval())")
    size, streams, count, batch = None, [], 0, []

    def code(batch: list[torch.Tensor]) -> None:
        out = model.compress(torch.stack(batch), channels)
        if tuple(out["shape"]) != (-(-size[0] // VIDEO_STRIDE), -(-size[1] // VIDEO_STRIDE)):
            raise RuntimeError(f"compress() returned latent shape {out['shape']} for frames of "
                               f"{size[0]}×{size[1]}")  # cannot happen with BinaryVideoCodec
        streams.append(bytes(out["strings"][0]))

    for x in frames:
        _check_frame(x, count)
        if size is None:
            size = tuple(x.shape[1:])
            if size[0] > MAX_SIDE or size[1] > MAX_SIDE or group * size[0] * size[1] > MAX_PIXELS:
                raise ValueError(f"groups of {group} frames of {size[0]}×{size[1]} are too large "
                                 f"for the format (at most {MAX_SIDE} a side and {MAX_PIXELS} "
                                 f"pixels a group)")
        elif tuple(x.shape[1:]) != size:
            raise ValueError(f"frame {count} is {x.shape[1]}×{x.shape[2]}, the first frame "
                             f"{size[0]}×{size[1]}: all frames must have the same size")
        count += 1
        if count > MAX_FRAMES:
            raise ValueError(f"more than {MAX_FRAMES} frames: the format holds at most that many")
        batch.append(x.cpu().float())
        if len(batch) == group:
            code(batch)
            batch = []
    if batch:
        code(batch)
    if size is None:
        raise ValueError("no frames to compress")
    header = VideoHeader(version=2, kind="video", model=model_name, profile=profile,
                         order=model.order, padding=PAD_REPLICATE, N=int(model.N),
                         C=int(model.C), channels=channels, group=group, frames=count,
                         height=size[0], width=size[1], fingerprint=video_fingerprint(model),
                         lengths=tuple(map(len, streams)), header_size=0)
    head = _pack_video_header(header)
    payload = b"".join(streams)
    crc = zlib.crc32(payload, zlib.crc32(head))
    return head + _U32.pack(crc) + payload


def decode_video(blob: bytes, model: BinaryVideoCodec) -> Iterator[torch.Tensor]:
    """Decode a file made by :func:`encode_video` with ``model``: an iterator of its groups,
    float tensors ``(frames, 3, H, W)`` in ``[0, 1]`` on the CPU (one group in memory at a time).

    The header and the model are checked when this is called (a damaged or foreign file, or a
    model other than the encoder's, raises :class:`BitstreamError` before anything is decoded);
    a stream that does not decode raises :class:`BitstreamError` when its group is reached. Each
    group is decoded under :func:`nctutor.config.one_thread`, so the frames are the same whatever
    thread count the caller uses: those of ``model.decompress`` run on one thread. Used by the
    binary video codec's command line and :func:`nctutor.rd.binary_video.code_clip` (book section
    *A binary video codec with delta-sigma modulation → Real bytes*).
    """
    h = read_header(blob)
    if h.kind != "video":
        how = ("decode_pframe and its reference frame" if h.kind == "pframe"
               else "decode_image (nctutor decompress reads either)")
        raise BitstreamError(f"the file holds {'an' if h.kind == 'image' else 'a'} {h.kind} of "
                             f"{h.model}, not a video: decode it with {how}")
    if not isinstance(model, BinaryVideoCodec):
        raise BitstreamError(f"wrong model: the file was written by {h.model}, the decoder is a "
                             f"{type(model).__name__}")
    if (model.order, model.N, model.C) != (h.order, h.N, h.C):
        raise BitstreamError(f"wrong model: the file needs {h.model} (order {h.order}) with "
                             f"N={h.N}, C={h.C} (profile {h.profile or 'n/a'!r}), the decoder is "
                             f"of order {model.order} with N={model.N}, C={model.C}")
    if video_fingerprint(model) != h.fingerprint:
        raise BitstreamError(f"wrong model: {h.model} with other weights wrote this file (the "
                             f"fingerprints of g_s differ); decode it with the model that "
                             f"encoded it")
    if model.training:
        raise ValueError("model must be in eval mode (call model.eval())")

    def groups() -> Iterator[torch.Tensor]:
        pos = h.header_size
        for n, frames in zip(h.lengths, h.group_sizes, strict=True):
            stream = bytes(blob[pos : pos + n])
            pos += n
            with config.one_thread():
                x_hat = model.decompress([stream], h.shape, frames, h.channels)
            yield x_hat[..., : h.height, : h.width].cpu()

    return groups()


# --------------------------------------------------------------------------- P-frame


class ReferenceMismatchError(BitstreamError):
    """A P-frame file given another reference frame than the one it was coded against (another
    size, or other 8-bit pixels): decoding would give garbage, so it is refused.

    Raised by :func:`decode_pframe` (book section *Conditional coding in practice → Real
    bitstreams*).
    """


def _as_8bit(x: torch.Tensor) -> torch.Tensor:
    """``x`` in [0, 1] rounded to its 8-bit values (``round(255·x)/255``), as float32 on the CPU:
    the frame a PNG of it holds."""
    return x.detach().float().cpu().clamp(0, 1).mul(255).round().div(255)


def coder_fingerprint(model: cc.PFrameCoder) -> int:
    """CRC32 of a P-frame coder's entropy tables (:func:`nctutor.codecs.model_fingerprint`) and
    of all its weights: the decoder's synthesis, GS and CodecNet's prediction encoder shape the
    frame as much as the tables shape the bits, so a coder with other weights is refused even
    where its tables agree. Defined in book section *Conditional coding in practice → Real
    bitstreams*."""
    crc = model_fingerprint(model)
    for _, t in sorted(model.state_dict().items()):
        if t.is_floating_point():
            crc = zlib.crc32(t.detach().cpu().float().numpy().tobytes(), crc)
    return crc


def reference_fingerprint(ref: torch.Tensor) -> int:
    """CRC32 of a reference frame ``(3, H, W)`` in [0, 1]: of ``H`` and ``W`` (two big-endian
    32-bit integers), then of its 8-bit pixels ``round(255·ref)`` in ``(3, H, W)`` order.

    What a P-frame file stores to refuse another reference (:func:`decode_pframe`). Defined in
    book section *Conditional coding in practice → Real bitstreams*.
    """
    _check_frame(ref, "ref")
    height, width = ref.shape[-2:]
    pixels = ref.detach().cpu().clamp(0, 1).mul(255).round().to(torch.uint8).contiguous()
    return zlib.crc32(pixels.numpy().tobytes(), zlib.crc32(struct.pack(">II", height, width)))


def _select(model: cc.PFrameCoder, out: dict, mask: torch.Tensor | bool, height: int,
            width: int) -> torch.Tensor:
    """The frame a P-frame decoder outputs: ``decompress``'s reconstruction (xGDC: ``x̂_d`` where
    ``mask`` is False, ``x̂_g`` where True), cropped to ``height × width``, on the CPU."""
    if not isinstance(model, cc.XGDC):
        return codecs.crop(out["x_hat"][0], height, width).clamp(0, 1).cpu()
    x_d = codecs.crop(out["x_hat_d"][0], height, width).cpu()
    x_g = codecs.crop(out["x_hat_g"][0], height, width).cpu()
    return torch.where(torch.as_tensor(mask), x_g, x_d).clamp(0, 1)


@torch.no_grad()
def pframe_reconstruction(model: cc.PFrameCoder, x: torch.Tensor, ref: torch.Tensor,
                          quality: int, switch: str | None = None,
                          profile: str | None = None) -> tuple[bytes, torch.Tensor]:
    """Code the frame ``x`` given the reference frame ``ref``: ``(file, x̂)``, the complete P-frame
    file of :func:`encode_pframe` (model name ``model.name``) and the frame its decoder will
    output, as a float ``(3, H, W)`` tensor in [0, 1] on the CPU (equal, as 8-bit values, to what
    :func:`decode_pframe` gives; the experiment needs no second decode).

    ``profile`` (written to the header) defaults to ``model.nctutor["profile"]`` when the coder
    came from :func:`nctutor.zoo.pframe_model`, else ``""``; the other arguments are those of
    :func:`encode_pframe`. Defined in book section *Conditional coding in practice → Real
    bitstreams*.
    """
    if not isinstance(model, cc.PFrameCoder):
        raise TypeError(f"model must be a P-frame coder (nctutor.codecs.conditional), got "
                        f"{type(model).__name__}")
    if profile is None:
        profile = str(getattr(model, "nctutor", {}).get("profile") or "")
    return _encode_pframe(model, x, ref, model.name, quality, profile, switch)


@torch.no_grad()
def encode_pframe(model: cc.PFrameCoder, x: torch.Tensor, ref: torch.Tensor, model_name: str,
                  quality: int, profile: str = "", switch: str | None = None,
                  portable: bool = True) -> bytes:
    """Compress the frame ``x`` given the reference frame ``ref`` (both ``(3, H, W)`` in [0, 1],
    the same size) into a complete P-frame file (kind 1; layout in the module docstring).

    The reference is taken as its 8-bit values (what the PNG of a decoded frame holds, and what
    the decoder will be given). Motion: :func:`nctutor.codecs.pframe.block_motion` of ``x`` in
    it, the prediction ``x̃`` by :func:`~nctutor.codecs.pframe.compensate`, the vectors coded by
    :func:`~nctutor.codecs.pframe.encode_motion`. ``x`` and ``x̃`` are padded to multiples of 64
    and coded by ``model.compress(x, x̃)``; the encoder then decodes exactly as the decoder will.
    ``switch`` (``None``: ``"quadtree"`` for xGDC, ``"none"`` for the others) chooses between
    xGDC's ``x̂_d`` (Eq. 12) and ``x̂_g`` (Eq. 13): ``"d"`` or ``"g"`` everywhere, ``"frame"``
    the one of smaller Lagrangian cost ``Σ λ·255²/3·Σ_c (x − x̂)²`` over the frame (one bit,
    :func:`nctutor.codecs.conditional.block_cost` with ``λ`` of ``quality``), ``"quadtree"``
    the rate-distortion-optimal quad-tree of :func:`nctutor.codecs.conditional.quadtree`; the
    other coders have one reconstruction and take ``"none"`` only.

    ``model_name`` (``model.name``), ``quality`` and ``profile`` are written to the header so
    that a decoder can find the same coder (:func:`nctutor.zoo.pframe_model`); ``model`` must be
    in eval mode with ``update()`` done. The bytes are deterministic. To get the encoder's
    reconstruction too, call :func:`pframe_reconstruction`. Defined in book section *Conditional
    coding in practice → Real bitstreams*. ``portable=False`` writes the float path of format
    version 2 (see :func:`encode_image`).
    """
    return _encode_pframe(model, x, ref, model_name, quality, profile, switch, portable)[0]


def _encode_pframe(model: cc.PFrameCoder, x: torch.Tensor, ref: torch.Tensor, model_name: str,
                   quality: int, profile: str, switch: str | None, portable: bool = True
                   ) -> tuple[bytes, torch.Tensor]:
    version = VERSION if portable else 2
    if not isinstance(model, cc.PFrameCoder):
        raise TypeError(f"model must be a P-frame coder (nctutor.codecs.conditional), got "
                        f"{type(model).__name__}")
    if model_name != model.name:
        raise ValueError(f"model_name must name the coder, {model.name!r}, got {model_name!r}")
    lmbda = codecs.lmbda(quality)  # validates quality
    xgdc = isinstance(model, cc.XGDC)
    switch = ("quadtree" if xgdc else "none") if switch is None else switch
    allowed = SWITCHES[1:] if xgdc else ("none",)
    if switch not in allowed:
        raise ValueError(f"switch must be one of {', '.join(allowed)} for {model.name}, got "
                         f"{switch!r}")
    if not (len(profile) <= MAX_NAME and all(0x21 <= ord(c) < 0x7F for c in profile)):
        raise ValueError(f"profile must be printable ASCII without spaces, at most {MAX_NAME}")
    _check_frame(x, "x")
    _check_frame(ref, "ref")
    if x.shape != ref.shape:
        raise ValueError(f"x is {x.shape[1]}×{x.shape[2]}, ref {ref.shape[1]}×{ref.shape[2]}: a "
                         f"frame and its reference must have the same size")
    _, height, width = x.shape
    if height > MAX_SIDE or width > MAX_SIDE or height * width > MAX_PIXELS:
        raise ValueError(f"frame {height}×{width} is too large for the format (at most "
                         f"{MAX_SIDE} a side and {MAX_PIXELS} pixels)")
    if model.training:
        raise ValueError("model must be in eval mode (call model.eval())")
    model = _entropy_path(model, version)
    fingerprint = coder_fingerprint(model)
    x, ref = x.detach().float().cpu(), _as_8bit(ref)
    with config.one_thread():  # a thousand small tensor operations: threads only wait
        mv = pf.block_motion(x, ref)
        xt = pf.compensate(ref, mv)
    motion = pf.encode_motion(mv)
    device = next(model.parameters()).device
    xp = codecs.pad(x[None], PFRAME_STRIDE).to(device)
    xtp = codecs.pad(xt[None], PFRAME_STRIDE).to(device)
    with _networks(model, version):
        coded = model.compress(xp, xtp)
        y, z = (bytes(s[0]) for s in coded["strings"])
        shape = tuple(int(v) for v in coded["shape"])
        out = model.decompress(coded["strings"], shape, xtp)  # exactly what the decoder does
    bits: list[int] = []
    mask: torch.Tensor | bool = switch == "g"
    if switch in ("frame", "quadtree"):
        x_d = codecs.crop(out["x_hat_d"][0], height, width).cpu()
        x_g = codecs.crop(out["x_hat_g"][0], height, width).cpu()
        cost_d, cost_g = cc.block_cost(x, x_d, lmbda), cc.block_cost(x, x_g, lmbda)
        if switch == "frame":
            bits = [cc.frame_switch([float(cost_d.double().sum()), float(cost_g.double().sum())])]
            mask = bool(bits[0])
        else:
            mask, bits = cc.quadtree(cost_d, cost_g)
    x_hat = _select(model, out, mask, height, width)
    side = cc.pack_bits(bits)
    header = PFrameHeader(version=version, kind="pframe", model=model_name, profile=profile,
                          quality=quality, switch=switch, padding=PAD_REPLICATE, N=int(model.N),
                          M=int(model.M), height=height, width=width, shape=shape,
                          side_bits=len(bits), fingerprint=fingerprint,
                          reference=reference_fingerprint(ref),
                          lengths=(len(motion), len(y), len(z), len(side)), header_size=0)
    head = _pack_pframe_header(header)
    payload = motion + y + z + side
    crc = zlib.crc32(payload, zlib.crc32(head))
    return head + _U32.pack(crc) + payload, x_hat


@torch.no_grad()
def decode_pframe(blob: bytes, model: cc.PFrameCoder, ref: torch.Tensor) -> torch.Tensor:
    """Decode a file made by :func:`encode_pframe` with ``model`` against the reference frame
    ``ref`` (``(3, H, W)`` in [0, 1]; taken as its 8-bit values): a float tensor ``(3, H, W)`` in
    [0, 1] on the CPU, equal as 8-bit values to the encoder's reconstruction.

    Raises :class:`BitstreamError` for a damaged or foreign file or another coder than the
    encoder's (the message names the coder and quality to use), and
    :class:`ReferenceMismatchError` (one of them) when ``ref`` is not the frame the file was
    coded against: another size, or other 8-bit pixels. The header and both checks come before
    anything is decoded. Defined in book section *Conditional coding in practice → Real
    bitstreams*.
    """
    h = read_header(blob)
    if h.kind != "pframe":
        raise BitstreamError(f"the file holds {'an' if h.kind == 'image' else 'a'} {h.kind} of "
                             f"{h.model}, not a P-frame: decode it with decode_{h.kind} "
                             f"(nctutor decompress without --reference)")
    need = f"{h.model} q{h.quality} [{h.profile or 'n/a'}]"
    if not isinstance(model, cc.PFrameCoder) or model.name != h.model:
        got = model.name if isinstance(model, cc.PFrameCoder) else type(model).__name__
        raise BitstreamError(f"wrong model: the file was written by {need}, the decoder is "
                             f"{got}")
    if (int(model.N), int(model.M)) != (h.N, h.M):
        raise BitstreamError(f"wrong model: the file needs {need} with N={h.N}, M={h.M}, the "
                             f"decoder has N={model.N}, M={model.M}")
    model = _entropy_path(model, h.version)
    if coder_fingerprint(model) != h.fingerprint:
        raise BitstreamError(f"wrong model: {h.model} with other weights wrote this file (its "
                             f"weights or entropy coder tables differ); decode it with {need}, "
                             f"the coder that encoded it{_older(h.version)}")
    if model.training:
        raise ValueError("model must be in eval mode (call model.eval())")
    if not isinstance(ref, torch.Tensor) or not ref.is_floating_point() or ref.dim() != 3 \
            or ref.shape[0] != 3:
        raise TypeError("ref must be a floating-point (3, H, W) tensor in [0, 1]")
    again = "the exact decoded reference frame (the same PNG, 8-bit) must be given"
    if tuple(ref.shape[1:]) != (h.height, h.width):
        raise ReferenceMismatchError(
            f"wrong reference frame: the file was coded against a {h.width}×{h.height} reference, "
            f"the one given is {ref.shape[2]}×{ref.shape[1]}; {again}")
    if reference_fingerprint(ref) != h.reference:
        raise ReferenceMismatchError(
            f"wrong reference frame: the file was coded against another reference frame (its "
            f"fingerprint differs); {again}")
    streams, pos = [], h.header_size
    for n in h.lengths:
        streams.append(bytes(blob[pos : pos + n]))
        pos += n
    motion, y, z, side = streams
    try:
        mv = pf.decode_motion(motion, pf.motion_grid(h.height, h.width))
    except pf.MotionStreamError as e:
        raise BitstreamError(f"corrupted file: {e}") from None
    if mv.abs().max() > pf.SEARCH:
        raise BitstreamError(f"corrupted file: motion vectors beyond ±{pf.SEARCH} pixels")
    bits = cc.unpack_bits(side, h.side_bits)
    if cc.pack_bits(bits) != side:
        raise BitstreamError("corrupted file: stray bits after the switching bits")
    mask: torch.Tensor | bool = h.switch == "g"
    if h.switch == "frame":
        mask = bool(bits[0])
    elif h.switch == "quadtree":
        try:
            mask = cc.decode_quadtree(bits, h.height, h.width)
        except ValueError as e:
            raise BitstreamError(f"corrupted file: {e}") from None
    with config.one_thread():
        xt = pf.compensate(_as_8bit(ref), mv)
    device = next(model.parameters()).device
    xtp = codecs.pad(xt[None], PFRAME_STRIDE).to(device)
    with _networks(model, h.version):
        out = model.decompress([[y], [z]], h.shape, xtp)
    x_hat = _select(model, out, mask, h.height, h.width)
    if not torch.isfinite(x_hat).all():  # a damaged z can give infinite means, and y still decode
        raise BitstreamError("corrupted file: the decoded frame is not finite (a damaged y or z "
                             "stream)")
    return x_hat
