"""Profiles, device, seeding, paths and the machine: the knobs every notebook and the CLI share.

Chapter *How to run this book* (sections *Profiles* and *Data*). A *profile* fixes only sizes
and step counts; the code path is the same for all three:

- ``smoke``: seconds per notebook on 2 CPU cores (what CI and the tests run);
- ``cpu``: a laptop, minutes per model, results that already show the effects;
- ``gpu``: the papers' low-rate widths (N=128, M=192; Ballé et al. 2018 and CompressAI use
  N=192, M=320 at high rates) and long schedules (Colab or a workstation).

The profile is chosen by the environment variable ``NCTUTOR_PROFILE``
(default ``smoke``), or passed explicitly to :func:`get_profile`.
"""

from __future__ import annotations

import os
import platform
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

PROFILE_ENV = "NCTUTOR_PROFILE"
DATA_ENV = "NCTUTOR_DATA"
CACHE_ENV = "NCTUTOR_CACHE"


@dataclass(frozen=True)
class Profile:
    """Sizes and schedules of one profile.

    Defined in book section *How to run this book → Profiles* (the table there is built from
    :data:`PROFILES`).

    Attributes:
        name: ``"smoke"``, ``"cpu"`` or ``"gpu"``.
        patch_size: side of the square random crops used for training.
        batch_size: training crops per step.
        steps: optimizer steps per model.
        lr: initial Adam learning rate of the main parameters.
        lr_drop: fraction of ``steps`` after which the learning rate drops 10x.
        aux_lr: learning rate of the entropy bottleneck's auxiliary (quantile) loss.
        N: channel width of the transforms (Ballé et al. 2018's N).
        M: channels of the latent y (Ballé et al. 2018's M).
        val_every: steps between validations on Kodak crops (0: never).
        val_crop: side of the centre crop of each Kodak image used in validation.
        eval_images: how many Kodak images the evaluations use (24 = all).
        eval_crop: side of the centre crop for evaluation (0 = whole image).
        num_workers: data loader worker processes.
        amp: use mixed precision (bfloat16 autocast) on CUDA.
    """

    name: str
    patch_size: int
    batch_size: int
    steps: int
    lr: float
    lr_drop: float
    aux_lr: float
    N: int
    M: int
    val_every: int
    val_crop: int
    eval_images: int
    eval_crop: int
    num_workers: int
    amp: bool

    def to_dict(self) -> dict:
        """The profile as a plain dict (stored in checkpoint manifests)."""
        return asdict(self)


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke", patch_size=64, batch_size=4, steps=30, lr=1e-3, lr_drop=0.8,
        aux_lr=1e-3, N=16, M=24, val_every=0, val_crop=128, eval_images=2, eval_crop=256,
        num_workers=0, amp=False,
    ),
    "cpu": Profile(
        name="cpu", patch_size=128, batch_size=8, steps=6000, lr=1e-3, lr_drop=0.75,
        aux_lr=1e-3, N=64, M=96, val_every=500, val_crop=256, eval_images=24, eval_crop=0,
        num_workers=2, amp=False,
    ),
    "gpu": Profile(
        name="gpu", patch_size=256, batch_size=16, steps=300_000, lr=1e-4, lr_drop=0.9,
        aux_lr=1e-3, N=128, M=192, val_every=5000, val_crop=512, eval_images=24, eval_crop=0,
        num_workers=8, amp=True,
    ),
}


@dataclass(frozen=True)
class VideoSizes:
    """Sizes and schedule of the binary video codec at one profile (the image fields of
    :class:`Profile` do not fit a group of frames).

    Used by the video trainer (book section *A binary video codec with delta-sigma modulation →
    Training*); no page calls it. ``N``, ``C``: transform width and binary channels; ``frames``:
    the group length ``T``; ``patch_size``, ``batch_size``: training crops; ``limit``: frames read
    from each clip (None: all; ``smoke`` reads a few so tests stay fast); ``val_every``,
    ``val_crop``: validation on central crops of the validation segments (``smoke``: none, reading
    them means decoding each clip up to its end).
    """

    N: int
    C: int
    frames: int
    patch_size: int
    batch_size: int
    steps: int
    lr: float
    lr_drop: float
    val_every: int
    val_crop: int
    limit: int | None


VIDEO_SIZES: dict[str, VideoSizes] = {
    "smoke": VideoSizes(N=8, C=16, frames=4, patch_size=32, batch_size=2, steps=20, lr=1e-3,
                        lr_drop=0.8, val_every=0, val_crop=32, limit=12),
    "cpu": VideoSizes(N=48, C=128, frames=8, patch_size=64, batch_size=8, steps=4000, lr=1e-3,
                      lr_drop=0.5, val_every=250, val_crop=128, limit=None),
    "gpu": VideoSizes(N=128, C=256, frames=8, patch_size=256, batch_size=8, steps=200_000,
                      lr=1e-4, lr_drop=0.9, val_every=2000, val_crop=256, limit=None),
}


@dataclass(frozen=True)
class PFrameSizes:
    """Schedule of the P-frame coders at one profile (widths and crops are the profile's).

    Used by the P-frame trainer (book section *Conditional coding in practice → Training*); no
    page calls it. ``steps``, ``lr``: Adam steps and learning rate from the warm start (the
    shipped image codec); ``lr_drop``: the fraction of steps after which it drops 10×.
    """

    steps: int
    lr: float
    lr_drop: float


PFRAME_SIZES: dict[str, PFrameSizes] = {
    "smoke": PFrameSizes(steps=4, lr=1e-4, lr_drop=0.8),
    "cpu": PFrameSizes(steps=800, lr=3e-4, lr_drop=0.8),
    "gpu": PFrameSizes(steps=100_000, lr=1e-4, lr_drop=0.9),
}


def get_profile(name: str | None = None, **overrides) -> Profile:
    """Return the profile ``name`` (default: ``$NCTUTOR_PROFILE``, else ``smoke``).

    Keyword arguments override single fields, e.g. ``get_profile("cpu", steps=100)``.
    Defined in book section *How to run this book → Profiles*; every learned-codec page starts
    with it (chapters *Transform coding with learned priors*, *Your first learned codec* and
    *Rate-distortion curves of three learned codecs*).
    """
    name = (name or os.environ.get(PROFILE_ENV) or "smoke").strip().lower()
    if name not in PROFILES:
        raise ValueError(
            f"unknown profile {name!r}: set {PROFILE_ENV} to one of {', '.join(PROFILES)}"
        )
    profile = PROFILES[name]
    unknown = set(overrides) - set(profile.to_dict())
    if unknown:
        raise TypeError(f"Profile has no field(s) {sorted(unknown)}")
    return replace(profile, **overrides) if overrides else profile


def device(prefer: str | None = None):
    """The torch device to use: ``prefer`` if given, else CUDA when present, else CPU.

    Not called on a page; the trainer, the evaluation and the bitstream use it (chapter
    *How to run this book → Profiles*: the ``gpu`` profile is the CUDA case).
    """
    import torch

    if prefer:
        return torch.device(prefer)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def synchronize(dev) -> None:
    """Wait for the work queued on ``dev`` (a CUDA device) to finish; nothing on the CPU.

    Timings call it before reading the clock (chapter *Transform coding with learned priors →
    How fast, how close to the entropy*); no page calls it.
    """
    import torch

    if torch.device(dev).type == "cuda":
        torch.cuda.synchronize(dev)


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and torch (all devices) so that runs repeat.

    Not called on a page; :func:`nctutor.train.train` seeds with it (chapter *How to run this
    book → Training from the command line*: a resumed run repeats).
    """
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def repo_root() -> Path:
    """The top folder of a source checkout (parent of the ``nctutor`` package).

    Used by the chapter *How to run this book → Data* (the ``../shared/data`` root beside it).
    """
    return Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """Where nctutor keeps downloads and checkpoints.

    ``$NCTUTOR_CACHE`` if set, else ``$XDG_CACHE_HOME/nctutor``, else ``~/.cache/nctutor``.
    Described in book section *How to run this book → Data*; used in the notebook
    *Rate-distortion curves of three learned codecs → Saving the results in CompressAI's format*.
    """
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "nctutor"


def data_root_candidates() -> list[Path]:
    """Data roots in the order they are searched.

    Defined in book section *How to run this book → Data*.

    1. ``$NCTUTOR_DATA`` when set (it then replaces the ``../shared/data`` guesses of 2.);
    2. else ``../shared/data`` beside the checkout and beside the working directory;
    3. the cache's ``data`` folder, which downloads fill.
    """
    if os.environ.get(DATA_ENV):
        return [Path(os.environ[DATA_ENV]).expanduser()]
    seen: list[Path] = []
    for p in (
        repo_root().parent / "shared" / "data",
        Path.cwd().parent / "shared" / "data",
        Path.cwd() / "shared" / "data",
        cache_dir() / "data",
    ):
        p = p.resolve()
        if p not in seen:
            seen.append(p)
    return seen


@contextmanager
def one_thread() -> Iterator[None]:
    """Run a block with ``torch.set_num_threads(1)``, then restore the thread count.

    The decoders' arithmetic that must be bit-identical at both ends (the exact twins of
    :mod:`nctutor.codecs.exact`, the lattice codec, the spatial predictor): the same result
    whatever thread count the caller uses. ``torch.set_num_threads`` is global, so do not decode
    in several Python threads at once. A helper of book section "Transform coding with learned
    priors → Exact Gaussian coding"; no page calls it.
    """
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


#: The CPU flags :func:`machine_info` records: the SIMD extensions whose presence decides which
#: float kernels torch and oneDNN run (x86-64, then ARM), and so the last bits of a float result.
SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl",
              "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8",
              "asimd", "sve", "sve2")

#: Environment variables that choose kernels or thread counts; :func:`machine_info` records those
#: that are set (``ONEDNN_MAX_CPU_ISA=AVX2`` makes an AVX-512 machine compute like an AVX2 one).
KERNEL_ENV = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "OMP_NUM_THREADS",
              "MKL_NUM_THREADS")


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields in ``/proc/cpuinfo`` (``{}`` where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def machine_info() -> dict:
    """What a record keeps of the machine that made it: the CPU model (``/proc/cpuinfo``'s
    "model name", else ``platform.processor()``), its :data:`SIMD_FLAGS`, the kernels torch
    picked (``torch.backends.cpu.get_cpu_capability()``), architecture, cores, torch threads,
    the versions of torch, NumPy and CompressAI, and the :data:`KERNEL_ENV` variables set.

    The bytes of a file do not depend on them, but a float reconstruction may, in its last bits
    (book section *Transform coding with learned priors → Evaluation*). Every JSON record and
    benchmark that nctutor writes holds this dict (``nctutor bench``, ``latent-eval``,
    ``predictor-eval``, the shipped weights' manifests and reports).
    """
    from importlib import metadata

    import torch

    cpu = _cpuinfo()
    flags = set((cpu.get("flags") or cpu.get("Features") or "").split())
    try:
        compressai = metadata.version("compressai")
    except metadata.PackageNotFoundError:
        compressai = None
    return {"cpu": cpu.get("model name") or platform.processor() or platform.machine(),
            "simd": [f for f in SIMD_FLAGS if f in flags],
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "machine": platform.machine(), "cpus": os.cpu_count(),
            "threads": torch.get_num_threads(), "torch": torch.__version__,
            "numpy": np.__version__, "compressai": compressai,
            "env": {k: os.environ[k] for k in KERNEL_ENV if k in os.environ}}
