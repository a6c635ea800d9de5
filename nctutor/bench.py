"""``nctutor bench``: encode/decode milliseconds and coding overhead of the book's codecs.

Defined in book section "Transform coding with learned priors → How fast, how close to the
entropy".

For each model and Kodak image this measures three codecs that share the same trained weights:

* **ours**: :func:`nctutor.container.encode_image` / :func:`~nctutor.container.decode_image`,
  i.e. padding, the model's ``compress``/``decompress``, header, fingerprint and CRC;
* **CompressAI**: the same CompressAI class (from ``compressai.registry.MODELS``) built directly
  at the same widths, the same state dict loaded, ``update(force=True)``, ``compress`` /
  ``decompress`` called on the padded image — the file format's cost is ``ours / CompressAI``;
* **exact** (hyperprior models only): the real exact-coded file, ``encode_image(…,
  coder="exact")`` / ``decode_image`` with the twin :func:`nctutor.codecs.exact.exact` of the
  CompressAI model, made once outside the timings: ``y`` coded with the exact per-symbol
  Gaussian, ``z`` as before; its decoder runs ``h_s`` and ``g_s`` on one thread (see
  :mod:`nctutor.codecs.exact`), which its timings include.

``nctutor bench --modes …`` times the modes of the lattice codec instead (:func:`run_modes`,
chapter *Lattices and the latent shift on a trained codec*, section *Time (Table 6)*): each mode
of :data:`nctutor.rd.latent.MODES` asked for, as real ``.nct`` files, against ``scalar`` (the
same lattice coder with rounding: what the lattice or the shift costs) and against CompressAI's
own ``compress``/``decompress`` (what the whole coder costs).

Each timing is the median of ``repeat`` runs after one warm-up run. The *coding overhead* of a
coder is ``bits / (-Σ log2 likelihood) - 1``, the likelihoods of the model's ``forward`` in eval
mode (``y`` rounded as the coders round it), and ``bits`` counts the entropy-coded streams (the
file's header excluded): what the coder spends over an ideal entropy coder for the same model.
It is given over all streams (``z`` included) and for ``y`` alone. The exact coder's overhead
can be negative: it folds the tails beyond the image's own symbol range into the two end symbols
(see :mod:`nctutor.entropy.gaussian`), which beats ``-Σ log2 likelihood`` when the predicted
scales are too wide, as with a barely trained model.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch

from . import codecs, config, container, data, zoo
from .codecs.exact import exact, has_exact_coder
from .codecs.latent import has_latent_codec
from .entropy import integer
from .files import atomic_write
from .rd.latent import MODES
from .rd.metrics import psnr

#: The columns of the two tables: (key of :class:`BenchRow`, header, format).
TIME_COLUMNS = (
    ("enc_ours_ms", "enc ours ms", "{:.1f}"),
    ("enc_compressai_ms", "enc CAI ms", "{:.1f}"),
    ("enc_ratio", "enc ratio", "{:.3f}"),
    ("enc_exact_ms", "enc exact ms", "{:.1f}"),
    ("dec_ours_ms", "dec ours ms", "{:.1f}"),
    ("dec_compressai_ms", "dec CAI ms", "{:.1f}"),
    ("dec_ratio", "dec ratio", "{:.3f}"),
    ("dec_exact_ms", "dec exact ms", "{:.1f}"),
)
BIT_COLUMNS = (
    ("bpp", "bpp", "{:.4f}"),
    ("ideal_bits", "ideal bits", "{:.0f}"),
    ("bits_compressai", "bits CAI", "{:.0f}"),
    ("bits_exact", "bits exact", "{:.0f}"),
    ("overhead_compressai", "ovh CAI %", "{:+.2%}"),
    ("overhead_exact", "ovh exact %", "{:+.2%}"),
    ("overhead_y_compressai", "ovh y CAI %", "{:+.2%}"),
    ("overhead_y_exact", "ovh y exact %", "{:+.2%}"),
)
COLUMNS = TIME_COLUMNS + BIT_COLUMNS


@dataclass
class BenchRow:
    """Measurements of one model on one image (means over images use the same fields).

    Times are milliseconds (median of the repeats); ``*_ratio`` is ours / CompressAI; bits are
    of the streams only (``file_bytes`` is the whole ``.nct`` file); ``ideal_*`` is
    ``-Σ log2 likelihood``; ``overhead_*`` is ``bits / ideal - 1``. Exact-coder fields are NaN for
    the factorized prior. Printed by :func:`table` in book section "Transform coding with learned
    priors → How fast, how close to the entropy".
    """

    model: str
    image: str
    height: int
    width: int
    pixels: int
    enc_ours_ms: float
    dec_ours_ms: float
    enc_compressai_ms: float
    dec_compressai_ms: float
    enc_exact_ms: float
    dec_exact_ms: float
    file_bytes: int
    bits_compressai: int
    bits_y_compressai: int
    bits_exact: float
    bits_y_exact: float
    ideal_bits: float
    ideal_y_bits: float

    @property
    def enc_ratio(self) -> float:
        return self.enc_ours_ms / self.enc_compressai_ms

    @property
    def dec_ratio(self) -> float:
        return self.dec_ours_ms / self.dec_compressai_ms

    @property
    def bpp(self) -> float:
        return 8 * self.file_bytes / self.pixels

    @property
    def overhead_compressai(self) -> float:
        return self.bits_compressai / self.ideal_bits - 1

    @property
    def overhead_exact(self) -> float:
        return self.bits_exact / self.ideal_bits - 1

    @property
    def overhead_y_compressai(self) -> float:
        return self.bits_y_compressai / self.ideal_y_bits - 1

    @property
    def overhead_y_exact(self) -> float:
        return self.bits_y_exact / self.ideal_y_bits - 1

    def to_dict(self) -> dict:
        """Fields and derived figures, for JSON."""
        d = asdict(self)
        d.update({k: getattr(self, k) for k, _, _ in COLUMNS if k not in d})
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}


def time_ms(fns: dict[str, Callable[[], object]], repeat: int,
            device: torch.device) -> dict[str, tuple[float, object]]:
    """Median wall-clock milliseconds of each function over ``repeat`` rounds after one warm-up
    round; returns ``{name: (ms, result of its last run)}``.

    The functions take turns within each round, so a machine that slows down or speeds up during
    the benchmark (other processes, CPU frequency) affects all of them alike. Used by
    :func:`bench_image`; no page calls it."""
    results = {name: fn() for name, fn in fns.items()}  # warm-up: allocations, kernels, caches
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            config.synchronize(device)
            tic = time.perf_counter()
            results[name] = fn()
            config.synchronize(device)
            times[name].append(1000 * (time.perf_counter() - tic))
    return {name: (statistics.median(times[name]), results[name]) for name in fns}


def compressai_twin(model: torch.nn.Module, arch: str) -> torch.nn.Module:
    """The CompressAI class of ``arch`` (``compressai.registry.MODELS``) built directly at
    ``model``'s widths, with its state dict, in eval mode, ``update(force=True)``. Used by
    :func:`bench_image`; no page calls it."""
    from compressai.registry import MODELS

    twin = MODELS[arch](N=int(model.N), M=int(model.M))
    twin.load_state_dict(model.state_dict())
    twin.to(next(model.parameters()).device).eval()
    twin.update(force=True)
    return twin


def _same_symbols(model: torch.nn.Module, arch: str, blob: bytes) -> torch.Tensor:
    """CompressAI's own ``decompress`` of the streams of the file ``blob``, with the file's
    entropy parameters (portable tables, integer ``h_s``: :mod:`nctutor.entropy.integer`): the
    image the file must decode to."""
    twin = integer.portable_tables(compressai_twin(model, arch))
    header = container.read_header(blob)
    streams, pos = [], header.header_size
    for n in header.lengths:
        streams.append([blob[pos:pos + n]])
        pos += n
    with integer.integer_entropy(twin):
        return twin.decompress(streams, header.shape)["x_hat"]


@torch.no_grad()
def bench_image(model: torch.nn.Module, x: torch.Tensor, name: str, image: str = "",
                repeat: int = 3, quality: int | None = None, profile: str = "") -> BenchRow:
    """Benchmark one model (eval mode, updated) on one image ``(3, H, W)``: see the module
    docstring. Every round trip is checked (ours and exact decode to the same image as
    CompressAI's ``decompress`` of the same streams with the file's entropy parameters, up to
    the last float bits that ``g_s`` may change between thread counts); CompressAI's times are
    those of its own float path.
    Used by :func:`run`; no page calls it."""
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, got {repeat}")
    arch = codecs.canonical_name(name)
    info = getattr(model, "nctutor", {})
    quality = quality or info.get("quality", 3)
    device = next(model.parameters()).device
    h, w = x.shape[-2:]
    xp = codecs.pad(x[None].to(device), codecs.STRIDES[arch])

    cai = compressai_twin(model, arch)
    ex = exact(cai) if has_exact_coder(arch) else None
    encoders = {"ours": lambda: container.encode_image(model, x, arch, quality, profile),
                "cai": lambda: cai.compress(xp)}
    if ex is not None:
        encoders["exact"] = lambda: container.encode_image(ex, x, arch, quality, profile,
                                                           coder="exact")
    enc = time_ms(encoders, repeat, device)
    blob, c = enc["ours"][1], enc["cai"][1]
    decoders = {"ours": lambda: container.decode_image(blob, model),
                "cai": lambda: cai.decompress(c["strings"], c["shape"])}
    if ex is not None:
        blob_ex = enc["exact"][1]
        decoders["exact"] = lambda: container.decode_image(blob_ex, ex)
    dec = time_ms(decoders, repeat, device)
    (enc_ours, _), (enc_cai, _), (dec_ours, x_ours), (dec_cai, x_cai) = (
        enc["ours"], enc["cai"], dec["ours"], dec["cai"])
    x_cai = _same_symbols(model, arch, blob)[0, :, :h, :w].cpu()
    if not torch.allclose(x_ours, x_cai, atol=1e-5):
        raise RuntimeError(f"{name}: the .nct file and CompressAI decode to different images")

    out = cai(xp)  # eval mode: likelihoods of the rounded latents
    ideal = {k: -torch.log2(v).sum().item() for k, v in out["likelihoods"].items()}
    bits = {k: 8 * sum(len(s) for s in group) for k, group in zip("yz", c["strings"], strict=False)}

    nan = float("nan")
    enc_ex = dec_ex = bits_ex = bits_y_ex = nan
    if ex is not None:
        (enc_ex, _), (dec_ex, x_ex) = enc["exact"], dec["exact"]
        if not torch.allclose(x_ex, x_cai, atol=1e-5):
            raise RuntimeError(f"{name}: the exact-coded file decodes to another image")
        header = container.read_header(blob_ex)
        bits_y_ex = 8 * header.lengths[0]
        bits_ex = 8 * header.payload_size
    return BenchRow(
        model=name, image=image, height=h, width=w, pixels=h * w,
        enc_ours_ms=enc_ours, dec_ours_ms=dec_ours, enc_compressai_ms=enc_cai,
        dec_compressai_ms=dec_cai, enc_exact_ms=enc_ex, dec_exact_ms=dec_ex,
        file_bytes=len(blob), bits_compressai=sum(bits.values()), bits_y_compressai=bits["y"],
        bits_exact=bits_ex, bits_y_exact=bits_y_ex, ideal_bits=sum(ideal.values()),
        ideal_y_bits=ideal["y"])


def mean_row(rows: Sequence[BenchRow]) -> BenchRow:
    """The mean of ``rows`` (one model): times, bits and pixels averaged, so that the ratios,
    bpp and overheads of the mean row are ratios of means (bits-weighted overheads). Used by
    :func:`table` and :func:`to_json`; no page calls it."""
    return _mean(BenchRow, rows, ("model",))


def _mean(cls: type, rows: Sequence, same: tuple[str, ...]):
    """A ``cls`` whose numeric fields are the means of ``rows``'s, its fields ``same`` those of
    the first row, its image ``"mean of N"``."""
    if not rows:
        raise ValueError("no rows to average")
    keep = {k: getattr(rows[0], k) for k in same}
    numeric = {k: statistics.fmean(getattr(r, k) for r in rows)
               for k in cls.__dataclass_fields__ if k not in (*same, "image")}
    return cls(image=f"mean of {len(rows)}", **keep, **numeric)


def run(names: Sequence[str] = codecs.IMAGE_MODELS, quality: int = 3, profile: str | None = None,
        images: int | None = None, crop: int = 0, repeat: int = 3,
        device: str | None = None, progress: bool = False) -> list[BenchRow]:
    """Benchmark ``names`` (loaded with :func:`nctutor.zoo.load` at ``quality`` and ``profile``)
    on the first ``images`` Kodak images (default: the profile's ``eval_images``), centre-cropped
    to ``crop`` pixels when ``crop > 0``. Returns one :class:`BenchRow` per model and image.
    Defined in book section "Transform coding with learned priors → How fast, how close to the
    entropy"."""
    return [bench_image(model, x, arch, image, repeat, quality, prof)
            for arch, model, image, x, prof in _models_and_images(
                [codecs.canonical_name(m) for m in names], quality, profile, images, crop,
                repeat, device, progress)]


def _models_and_images(archs: Sequence[str], quality: int, profile: str | None,
                       images: int | None, crop: int, repeat: int, device: str | None,
                       progress: bool):
    """``(arch, model, image name, image, profile name)`` for every model of ``archs`` (loaded
    with :func:`nctutor.zoo.load`) and each of the first ``images`` Kodak images (default: the
    profile's ``eval_images``), centre-cropped to ``crop`` when ``crop > 0``; a progress bar."""
    from tqdm.auto import tqdm

    prof = config.get_profile(profile)
    n = prof.eval_images if images is None else images
    if n < 1 or crop < 0 or repeat < 1:
        raise ValueError("images and repeat must be at least 1, crop at least 0")
    kodak = data.kodak(n)
    dev = torch.device(device) if device else torch.device("cpu")
    with tqdm(total=len(archs) * len(kodak), desc="bench", unit="image",
              disable=not progress) as bar:
        for arch in archs:
            model = zoo.load(arch, quality, profile=prof.name).to(dev)
            for i in range(len(kodak)):
                x = kodak[i] if not crop else data.center_crop(kodak[i], crop)
                bar.set_postfix_str(f"{arch} {kodak.names[i]}")
                yield arch, model, kodak.names[i], x, prof.name
                bar.update()


def table(rows: Sequence[BenchRow], per_image: bool = False) -> str:
    """Two plain-text tables, timings then bits: one mean row per model, and the single images
    too if ``per_image``. Used in book section "Transform coding with learned priors → How fast,
    how close to the entropy"."""
    by_model: dict[str, list[BenchRow]] = {}
    for r in rows:
        by_model.setdefault(r.model, []).append(r)
    shown = []
    for group in by_model.values():
        if per_image:
            shown += group
        shown.append(mean_row(group))

    def cell(r: BenchRow, key: str, fmt: str) -> str:
        v = getattr(r, key)
        return "–" if math.isnan(v) else fmt.format(v)

    blocks = []
    for columns in (TIME_COLUMNS, BIT_COLUMNS):
        head = ["model", "image"] + [h for _, h, _ in columns]
        body = [[r.model, r.image] + [cell(r, k, f) for k, _, f in columns] for r in shown]
        blocks.append(_text_table(head, body))
    return "\n\n".join(blocks)


def _text_table(head: list[str], body: list[list[str]]) -> str:
    """Right-aligned columns under a header and a rule of dashes."""
    widths = [max(len(row[i]) for row in [head] + body) for i in range(len(head))]
    lines = [head, ["-" * w for w in widths]] + body
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True))
                     for cells in lines)


def to_json(rows: Sequence[BenchRow], file: str | os.PathLike, settings: dict) -> None:
    """Write ``{"settings", "rows", "means"}`` to ``file`` (NaN written as ``null``); what
    ``nctutor bench --json`` writes, no page calls it."""
    by_model: dict[str, list[BenchRow]] = {}
    for r in rows:
        by_model.setdefault(r.model, []).append(r)
    payload = {"settings": settings, "rows": [r.to_dict() for r in rows],
               "means": {m: mean_row(g).to_dict() for m, g in by_model.items()}}
    atomic_write(file, json.dumps(payload, indent=2))


# --------------------------------------------------------------------------- lattice modes

#: The columns of :func:`modes_table`: (key of :class:`ModeRow`, header, format).
MODE_COLUMNS = (
    ("bpp", "bpp", "{:.4f}"),
    ("psnr", "PSNR dB", "{:.2f}"),
    ("enc_ms", "enc ms", "{:.1f}"),
    ("dec_ms", "dec ms", "{:.1f}"),
    ("enc_vs_scalar", "enc ×scalar", "{:.2f}"),
    ("dec_vs_scalar", "dec ×scalar", "{:.3f}"),
    ("enc_vs_compressai", "enc ×CAI", "{:.2f}"),
    ("dec_vs_compressai", "dec ×CAI", "{:.3f}"),
)


@dataclass
class ModeRow:
    """One mode of the lattice codec on one image (means over images use the same fields).

    Times are milliseconds (median of the repeats): the mode's ``.nct`` encode and decode, those
    of ``scalar`` (the lattice coder with rounding) and those of CompressAI's own ``compress`` /
    ``decompress`` of the padded image, all measured in the same rounds. ``psnr`` is the 8-bit
    RGB PSNR of the decoded file. Printed by :func:`modes_table` in book section *Lattices and
    the latent shift on a trained codec → Time (Table 6)*.
    """

    model: str
    image: str
    mode: str
    pixels: int
    enc_ms: float
    dec_ms: float
    enc_scalar_ms: float
    dec_scalar_ms: float
    enc_compressai_ms: float
    dec_compressai_ms: float
    file_bytes: float
    psnr: float

    @property
    def bpp(self) -> float:
        return 8 * self.file_bytes / self.pixels

    @property
    def enc_vs_scalar(self) -> float:
        return self.enc_ms / self.enc_scalar_ms

    @property
    def dec_vs_scalar(self) -> float:
        return self.dec_ms / self.dec_scalar_ms

    @property
    def enc_vs_compressai(self) -> float:
        return self.enc_ms / self.enc_compressai_ms

    @property
    def dec_vs_compressai(self) -> float:
        return self.dec_ms / self.dec_compressai_ms

    def to_dict(self) -> dict:
        """Fields and derived figures, for JSON."""
        d = asdict(self)
        d.update({k: getattr(self, k) for k, _, _ in MODE_COLUMNS if k not in d})
        return d


def _check_modes(modes: Sequence[str]) -> list[str]:
    modes = list(dict.fromkeys(modes))
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise ValueError(f"unknown mode {unknown[0]!r}; modes: {', '.join(MODES)}" if unknown
                         else "no modes to time")
    return modes


@torch.no_grad()
def bench_modes(model: torch.nn.Module, x: torch.Tensor, name: str, modes: Sequence[str],
                image: str = "", repeat: int = 3, quality: int | None = None,
                profile: str = "") -> list[ModeRow]:
    """Time every mode of ``modes`` (names of :data:`nctutor.rd.latent.MODES`) on one image
    ``(3, H, W)``, with ``scalar`` and CompressAI's own ``compress``/``decompress`` timed in the
    same rounds (:func:`time_ms`), encoders first, then decoders of the files they wrote. The
    lattice codec caches its cell tables per process: the warm-up round builds them, so the
    times are those of a codec that has seen the image's densities before (a fresh decoder
    also builds its tables once). Returns one :class:`ModeRow` per mode. Used by
    :func:`run_modes`; no page calls it."""
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, got {repeat}")
    modes = _check_modes(modes)
    arch = codecs.canonical_name(name)
    if not has_latent_codec(arch):
        raise ValueError(f"the lattice modes wrap bmshj2018-factorized and mbt2018-mean only, "
                         f"not {arch}")
    quality = quality or getattr(model, "nctutor", {}).get("quality", 3)
    device = next(model.parameters()).device
    h, w = x.shape[-2:]
    xp = codecs.pad(x[None].to(device), codecs.STRIDES[arch])
    cai = compressai_twin(model, arch)

    def encoder(mode: str) -> Callable[[], bytes]:
        coder, quantizer, shift, search = MODES[mode]
        return lambda: container.encode_image(model, x, arch, quality, profile, coder=coder,
                                              quantizer=quantizer, shift=shift, search=search)

    timed = list(dict.fromkeys(["scalar", *modes]))
    enc = time_ms({"CAI": lambda: cai.compress(xp), **{m: encoder(m) for m in timed}}, repeat,
                  device)
    c = enc["CAI"][1]
    decoders = {"CAI": lambda: cai.decompress(c["strings"], c["shape"])}
    decoders.update({m: (lambda b=enc[m][1]: container.decode_image(b, model)) for m in timed})
    dec = time_ms(decoders, repeat, device)
    return [ModeRow(model=name, image=image, mode=m, pixels=h * w, enc_ms=enc[m][0],
                    dec_ms=dec[m][0], enc_scalar_ms=enc["scalar"][0],
                    dec_scalar_ms=dec["scalar"][0], enc_compressai_ms=enc["CAI"][0],
                    dec_compressai_ms=dec["CAI"][0], file_bytes=len(enc[m][1]),
                    psnr=psnr(x, dec[m][1])) for m in modes]


def mean_mode_row(rows: Sequence[ModeRow]) -> ModeRow:
    """The mean of ``rows`` (one model and mode): times, bytes, pixels and PSNR averaged, so that
    the ratios and the bpp of the mean row are ratios of means. Used by :func:`modes_table`;
    no page calls it."""
    return _mean(ModeRow, rows, ("model", "mode"))


def run_modes(names: Sequence[str], modes: Sequence[str], quality: int = 3,
              profile: str | None = None, images: int | None = None, crop: int = 0,
              repeat: int = 3, device: str | None = None,
              progress: bool = False) -> list[ModeRow]:
    """:func:`bench_modes` for each model of ``names`` (loaded with :func:`nctutor.zoo.load` at
    ``quality`` and ``profile``) on the first ``images`` Kodak images (default: the profile's
    ``eval_images``), centre-cropped to ``crop`` pixels when ``crop > 0``. What
    ``nctutor bench --modes`` prints. Defined in book section *Lattices and the latent shift on a
    trained codec → Time (Table 6)*."""
    modes = _check_modes(modes)
    archs = [codecs.canonical_name(m) for m in names]
    for arch in archs:
        if not has_latent_codec(arch):
            raise ValueError(f"the lattice modes wrap bmshj2018-factorized and mbt2018-mean "
                             f"only, not {arch}")
    rows: list[ModeRow] = []
    for arch, model, image, x, prof in _models_and_images(archs, quality, profile, images, crop,
                                                          repeat, device, progress):
        rows += bench_modes(model, x, arch, modes, image, repeat, quality, prof)
    return rows


def _by_model_and_mode(rows: Sequence[ModeRow]) -> dict[tuple[str, str], list[ModeRow]]:
    groups: dict[tuple[str, str], list[ModeRow]] = {}
    for r in rows:
        groups.setdefault((r.model, r.mode), []).append(r)
    return groups


def modes_table(rows: Sequence[ModeRow], per_image: bool = False) -> str:
    """A plain-text table of :class:`ModeRow`: one mean row per model and mode, and the single
    images too if ``per_image``. Used in book section *Lattices and the latent shift on a trained
    codec → Time (Table 6)*."""
    shown = []
    for group in _by_model_and_mode(rows).values():
        if per_image:
            shown += group
        shown.append(mean_mode_row(group))
    head = ["model", "image", "mode"] + [h for _, h, _ in MODE_COLUMNS]
    body = [[r.model, r.image, r.mode] + [f.format(getattr(r, k)) for k, _, f in MODE_COLUMNS]
            for r in shown]
    return _text_table(head, body)


def modes_to_json(rows: Sequence[ModeRow], file: str | os.PathLike, settings: dict) -> None:
    """Write ``{"settings", "rows", "means"}`` (means keyed ``"MODEL MODE"``) to ``file``; what
    ``nctutor bench --modes … --json`` writes, no page calls it."""
    payload = {"settings": settings, "rows": [r.to_dict() for r in rows],
               "means": {f"{m} {mode}": mean_mode_row(g).to_dict()
                         for (m, mode), g in _by_model_and_mode(rows).items()}}
    atomic_write(file, json.dumps(payload, indent=2))


# --------------------------------------------------------------------------- against a model

#: The code-space predictor's own variants: what ``nctutor bench --against`` times by default.
KWCC_MODELS = tuple(name for name in codecs.PREDICTORS if name.startswith("kwcc2018"))

#: The columns of :func:`against_table`: (key of :class:`AgainstRow`, header, format).
AGAINST_COLUMNS = (
    ("enc_ms", "enc ms", "{:.1f}"),
    ("dec_ms", "dec ms", "{:.1f}"),
    ("bytes", "bytes", "{:.0f}"),
    ("against_enc_ms", "enc ref ms", "{:.1f}"),
    ("against_dec_ms", "dec ref ms", "{:.1f}"),
    ("against_bytes", "bytes ref", "{:.0f}"),
    ("enc_ratio", "enc ×ref", "{:.3f}"),
    ("dec_ratio", "dec ×ref", "{:.3f}"),
    ("bytes_ratio", "bytes ×ref", "{:.3f}"),
)
#: The ratios of :class:`AgainstRow`; a mean row gives the mean of its images' ratios.
AGAINST_RATIOS = ("enc_ratio", "dec_ratio", "bytes_ratio")


@dataclass
class AgainstRow:
    """One model and the reference model ``against`` on one image, both as real ``.nct`` files.

    Times are milliseconds (median of the repeats) of :func:`nctutor.container.encode_image` and
    :func:`~nctutor.container.decode_image`, the model's and the reference's timed in the same
    rounds; ``bytes`` are the files' (header included). ``*_ratio`` is model / reference. A mean
    row (:func:`mean_against_row`) averages the fields; :func:`against_table` and
    :func:`against_to_json` give for it the mean of the images' ratios. Defined in book section
    *Predicting codes from their neighbours → Decoding time*.
    """

    model: str
    against: str
    image: str
    pixels: int
    enc_ms: float
    dec_ms: float
    bytes: float
    against_enc_ms: float
    against_dec_ms: float
    against_bytes: float

    @property
    def enc_ratio(self) -> float:
        return self.enc_ms / self.against_enc_ms

    @property
    def dec_ratio(self) -> float:
        return self.dec_ms / self.against_dec_ms

    @property
    def bytes_ratio(self) -> float:
        return self.bytes / self.against_bytes

    def to_dict(self) -> dict:
        """Fields and ratios, for JSON."""
        return {**asdict(self), **{k: getattr(self, k) for k in AGAINST_RATIOS}}


def _checked(x_hat: torch.Tensor, shape: torch.Size, name: str) -> None:
    """Refuse a decoded image of the wrong shape or with values outside ``[0, 1]``."""
    if tuple(x_hat.shape) != tuple(shape):
        raise RuntimeError(f"{name}: the .nct file decodes to shape {tuple(x_hat.shape)}, "
                           f"not {tuple(shape)}")
    if not torch.isfinite(x_hat).all() or x_hat.min() < 0 or x_hat.max() > 1:
        raise RuntimeError(f"{name}: the .nct file decodes to values outside [0, 1]")


def _header_fields(model: torch.nn.Module) -> dict:
    """Name, quality and profile to write in a file's header: the ``nctutor`` record of
    :func:`nctutor.zoo.load`, else the model's architecture at quality 3, no profile."""
    info = getattr(model, "nctutor", None)
    if info is None:
        return {"name": codecs.architecture_of_model(model), "quality": 3, "profile": ""}
    return info


@torch.no_grad()
def bench_against(model: torch.nn.Module, reference: torch.nn.Module, x: torch.Tensor,
                  image: str = "", repeat: int = 3) -> AgainstRow:
    """Encode the image ``x`` ``(3, H, W)`` into a real ``.nct`` file with ``model`` and with
    ``reference`` (eval mode, updated; the headers name them as their ``nctutor`` record does,
    which :func:`nctutor.zoo.load` sets), then decode both files: encoders in the same rounds,
    then decoders (:func:`time_ms`). Each decoded image is checked (shape, values in
    ``[0, 1]``). Used by :func:`run_against`; no page calls it."""
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, got {repeat}")
    info, ref = _header_fields(model), _header_fields(reference)
    device = next(model.parameters()).device
    enc = time_ms({
        "model": lambda: container.encode_image(model, x, info["name"], info["quality"],
                                                info["profile"]),
        "ref": lambda: container.encode_image(reference, x, ref["name"], ref["quality"],
                                              ref["profile"])}, repeat, device)
    blob, blob_ref = enc["model"][1], enc["ref"][1]
    dec = time_ms({"model": lambda: container.decode_image(blob, model),
                   "ref": lambda: container.decode_image(blob_ref, reference)}, repeat, device)
    _checked(dec["model"][1], x.shape, info["name"])
    _checked(dec["ref"][1], x.shape, ref["name"])
    h, w = x.shape[-2:]
    return AgainstRow(model=info["name"], against=ref["name"], image=image, pixels=h * w,
                      enc_ms=enc["model"][0], dec_ms=dec["model"][0], bytes=len(blob),
                      against_enc_ms=enc["ref"][0], against_dec_ms=dec["ref"][0],
                      against_bytes=len(blob_ref))


def run_against(names: Sequence[str], against: str = "mbt2018", quality: int = 3,
                profile: str | None = None, images: int | None = None, crop: int = 0,
                repeat: int = 3, progress: bool = False) -> list[AgainstRow]:
    """:func:`bench_against` for each model of ``names`` against the model ``against`` (CompressAI's
    ``mbt2018`` by default, the context model of Minnen et al. 2018), all loaded once with
    :func:`nctutor.zoo.load` at ``quality`` and ``profile``, on the first ``images`` Kodak images
    (default: the profile's ``eval_images``), centre-cropped to ``crop`` pixels when
    ``crop > 0``; on the CPU (the predictor's coder is numpy). One :class:`AgainstRow` per model
    and image. What ``nctutor bench --against`` prints. Defined in book section *Predicting codes
    from their neighbours → Decoding time*."""
    prof = config.get_profile(profile)
    archs = [codecs.canonical_name(m) for m in names]
    if not archs:
        raise ValueError("no models to time")
    reference = zoo.load(against, quality, profile=prof.name)
    return [bench_against(model, reference, x, image, repeat)
            for _, model, image, x, _ in _models_and_images(archs, quality, prof.name, images,
                                                            crop, repeat, None, progress)]


def _by_model(rows: Sequence[AgainstRow]) -> dict[tuple[str, str], list[AgainstRow]]:
    groups: dict[tuple[str, str], list[AgainstRow]] = {}
    for r in rows:
        groups.setdefault((r.model, r.against), []).append(r)
    return groups


def mean_against_row(rows: Sequence[AgainstRow]) -> AgainstRow:
    """The mean of ``rows`` (one model, one reference): times, bytes and pixels averaged (its
    ratio properties are ratios of those means). Used by :func:`against_table`; no page calls
    it."""
    return _mean(AgainstRow, rows, ("model", "against"))


def mean_ratios(rows: Sequence[AgainstRow]) -> dict[str, float]:
    """``{"enc_ratio", "dec_ratio", "bytes_ratio"}``: the mean over ``rows`` (one model, one
    reference) of each image's ratio, every image weighing alike; the ``decode time against``
    figure of ``nctutor bench --against``. Defined in book section *Predicting codes from their
    neighbours → Decoding time*."""
    if not rows:
        raise ValueError("no rows to average")
    return {k: statistics.fmean(getattr(r, k) for r in rows) for k in AGAINST_RATIOS}


def against_table(rows: Sequence[AgainstRow], per_image: bool = False) -> str:
    """A plain-text table of :class:`AgainstRow`: one mean row per model (times and bytes
    averaged, ratios the mean of the images' ratios, as :func:`mean_ratios`), and the single
    images too if ``per_image``. Defined in book section *Predicting codes from their neighbours
    → Decoding time*."""
    body = []
    for group in _by_model(rows).values():
        shown = [(r, {}) for r in group] if per_image else []
        shown.append((mean_against_row(group), mean_ratios(group)))
        for r, ratios in shown:
            body.append([r.model, r.against, r.image]
                        + [f.format(ratios.get(k, getattr(r, k))) for k, _, f in AGAINST_COLUMNS])
    head = ["model", "against", "image"] + [h for _, h, _ in AGAINST_COLUMNS]
    return _text_table(head, body)


def against_to_json(rows: Sequence[AgainstRow], file: str | os.PathLike, settings: dict) -> None:
    """Write ``{"settings", "rows", "means"}`` to ``file``; the means are keyed by model, their
    ratios the mean of the images' ratios (:func:`mean_ratios`). What ``nctutor bench --against
    … --json`` writes; no page calls it."""
    payload = {"settings": settings, "rows": [r.to_dict() for r in rows],
               "means": {m: {**mean_against_row(g).to_dict(), **mean_ratios(g)}
                         for (m, _), g in _by_model(rows).items()}}
    atomic_write(file, json.dumps(payload, indent=2))
