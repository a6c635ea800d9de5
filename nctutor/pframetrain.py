"""The trainer of the P-frame coders (:mod:`nctutor.codecs.conditional`): short, flat, resumable.

Chapter *Conditional coding in practice*, sections *The P-frame setting* and *Training*. It reads
top to bottom:

- the pairs (:func:`pairs`): a frame ``x`` and its prediction ``x̃``, made once and cached. The
  reference (the previous frame) is coded with JPEG 2000 to about 35 dB, motion is found by block
  matching on it and ``x̃`` compensated from it (:mod:`nctutor.codecs.pframe`). Training pairs
  come from the training segments of :data:`nctutor.data.SPLIT` (every third frame) and from
  BSDS500 training images moved by a random sub-pixel translation and zoom (synthetic motion
  that block matching cannot follow exactly); test pairs from the test clips, never trained on;
- the settings (:class:`PFrameTrainConfig`; widths and crops of the profile, schedule from
  :data:`nctutor.config.PFRAME_SIZES`), the coder, and its start: the shipped mean-scale image
  codec of the same quality, every tensor copied where it fits (the first and last convolutions
  where the channels differ: the overlapping slice), the new layers from seed ``seed``. All five
  coders start alike and see the same crops in the same order: equal budget, equal start;
- the loss ``λ·255²·MSE + bpp`` (Eq. 14 with the book's λ ladder); xGDC's distortion is that of
  the signal :func:`~nctutor.codecs.conditional.theta_rule` picks; CompressAI's auxiliary loss
  for the quantiles; the learning rate drops 10× after ``lr_drop`` of the steps;
- ``checkpoint.pt`` + ``manifest.json`` every ``ckpt_every`` steps, at the end and on Ctrl-C.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import __version__, checkpoints, config, data
from .checkpoints import CHECKPOINT, MANIFEST, WEIGHTS_DIR, WEIGHTS_FORMAT, load_checkpoint
from .codecs import conditional as cc
from .codecs import lmbda
from .codecs import pframe as pf
from .errors import CheckpointError
from .files import atomic_write, sha256

#: Settings that make a run what it is: a checkpoint with other values is not resumed.
IDENTITY_KEYS = ("model", "quality", "N", "M", "patch_size", "batch_size", "seed", "init_from")
#: Buffers of the entropy coders' tables: rebuilt by ``update()``, not shipped.
TABLES = ("_quantized_cdf", "_offset", "_cdf_length", "scale_table")
#: Frames between training pairs of a clip, and BSDS500 images used as synthetic pairs.
PAIR_STRIDE, SYNTHETIC = 3, 100


@dataclass
class PFrameTrainConfig:
    """What to train and how; unset sizes come from the profile.

    ``init_from``: a weights file or run to start from (default: the shipped image codec
    ``mbt2018-mean-qQ.pt`` of the nearest quality, where its widths are the profile's);
    ``"none"`` starts from scratch. ``device``: where to train (default: CUDA when present, as
    for the image codecs). Defined in book section
    *Conditional coding in practice → Training*.
    """

    model: str = "pframe-xgdc"
    quality: int = 2
    profile: str | None = None
    steps: int | None = None
    batch_size: int | None = None
    patch_size: int | None = None
    lr: float | None = None
    N: int | None = None
    M: int | None = None
    seed: int = 7
    out_dir: str | None = None
    ckpt_every: int = 250
    init_from: str | None = None
    device: str | None = None

    def resolved(self) -> dict:
        """Every setting, with the profile's values filled in (stored in the manifest)."""
        if self.model not in cc.CODERS:
            raise ValueError(f"unknown P-frame coder {self.model!r}; choose one of "
                             f"{', '.join(cc.CODERS)}")
        p = config.get_profile(self.profile)
        sizes = config.PFRAME_SIZES[p.name]
        out = asdict(self)
        out["profile"] = p.name
        for key, value in (("steps", sizes.steps), ("lr", sizes.lr), ("batch_size", p.batch_size),
                           ("patch_size", p.patch_size), ("N", p.N), ("M", p.M)):
            out[key] = value if out[key] is None else out[key]
        out["lmbda"] = lmbda(self.quality)
        out["lr_drop"] = sizes.lr_drop
        if out["patch_size"] % 64:
            raise ValueError(f"patch_size {out['patch_size']} must be a multiple of 64")
        if out["init_from"] is None:  # the shipped image codec nearest in quality, where its
            shipped = sorted(int(f.stem.rsplit("-q", 1)[1])  # widths are these
                             for f in WEIGHTS_DIR.glob("mbt2018-mean-q*.pt"))
            near = min(shipped, key=lambda q: (abs(q - self.quality), q), default=self.quality)
            image = WEIGHTS_DIR / f"mbt2018-mean-q{near}.pt"
            widths = json.loads(image.with_suffix(".json").read_text()) if image.is_file() else {}
            fits = (widths.get("N"), widths.get("M")) == (out["N"], out["M"])
            out["init_from"] = str(image) if fits else "none"
        out["run_dir"] = str(self.out_dir or config.cache_dir() / "runs"
                             / f"{self.model}-q{self.quality}-{p.name}")
        return out


# --------------------------------------------------------------------------- the pairs


def _synthetic_reference(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """``x`` moved by a random translation of up to 6 pixels and a zoom of up to ±3 %
    (bilinear): a previous frame whose motion is not a whole number of pixels."""
    scale = 1 + (torch.rand((), generator=g) * 0.06 - 0.03)
    shift = (torch.rand(2, generator=g) * 12 - 6) * 2 / torch.tensor(x.shape[-2:][::-1])
    theta = torch.tensor([[scale, 0, shift[0]], [0, scale, shift[1]]], dtype=torch.float32)
    grid = F.affine_grid(theta[None], [1, *x.shape], align_corners=False)
    out = F.grid_sample(x[None], grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out[0].mul(255).round().div(255)


def make_pair(ref: torch.Tensor, x: torch.Tensor) -> dict:
    """``{"x", "xt", "ref", "info"}`` for a previous frame ``ref`` and a frame ``x``
    (``(3, H, W)`` in [0, 1]): the reference coded with JPEG 2000 at 35 dB (``"ref"``, what the
    decoder has), block motion on it, ``x̃`` compensated from it, all three as uint8. ``info``:
    the reference's bytes and PSNR, the motion bytes, the prediction's PSNR. Defined in book
    section *Conditional coding in practice → The P-frame setting*."""
    ref_hat, ref_bytes = pf.jpeg2000_reference(ref)
    xt, motion = pf.predict(x, ref_hat)
    info = {"reference_bytes": ref_bytes, "reference_psnr": _psnr(F.mse_loss(ref_hat, ref).item()),
            "motion_bytes": len(motion), "prediction_psnr": _psnr(F.mse_loss(xt, x).item())}
    return {"x": _u8(x), "xt": _u8(xt), "ref": _u8(ref_hat), "info": info}


def pairs(split: str, profile: str | None = None) -> list[dict]:
    """The P-frame pairs of ``split`` (``"train"`` or ``"test"``), each :func:`make_pair`'s
    ``{"x", "xt", "ref", "info"}`` plus ``{"clip", "frame"}``, made once and cached in the cache
    folder.

    ``test``: twelve evenly spaced pairs ``(t − 1, t)`` of each test clip (BasketballPass,
    Carphone). ``train``: every third pair of the training segments and :data:`SYNTHETIC`
    BSDS500 training images with synthetic motion. ``smoke`` takes a few of each. Defined in
    book section *Conditional coding in practice → The P-frame setting*.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    p = config.get_profile(profile)
    small = p.name == "smoke"
    file = config.cache_dir() / f"pframe-pairs-{split}{'-smoke' if small else ''}.pt"
    if file.is_file():
        return torch.load(file, weights_only=False)
    out = []
    names = [name for name, _, _ in data.SPLIT[split]]
    clips = data.split_frames(split, 8 if small else None)
    with tqdm(desc=f"P-frame pairs ({split})", total=None) as bar:
        for name, clip in zip(names, clips, strict=True):
            n = len(clip)
            frames = (torch.linspace(1, n - 1, 2 if small else 12).round().long().tolist()
                      if split == "test" else range(1, n, PAIR_STRIDE))
            for t in frames:
                pair = make_pair(clip[t - 1].float() / 255, clip[t].float() / 255)
                out.append({"clip": name, "frame": t, **pair})
                bar.update()
        if split == "train":
            images = data.bsds500("train")
            g = torch.Generator().manual_seed(0)
            for i in range(min(len(images), 2 if small else SYNTHETIC)):
                x = images[i]
                out.append({"clip": "bsds500", "frame": i,
                            **make_pair(_synthetic_reference(x, g), x)})
                bar.update()
    file.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(file, lambda tmp: torch.save(out, tmp))
    return out


def _u8(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(0, 1).mul(255).round().to(torch.uint8)


def crops(train_pairs: list[dict], index: int, patch: int, seed: int) -> torch.Tensor:
    """Crop ``index`` of the training stream: a pair drawn uniformly, a random
    ``patch × patch`` window, a random horizontal flip, as ``(2, 3, p, p)`` float (``x``, ``x̃``);
    seeded by ``seed`` and ``index``, so every coder and every resumed run sees the same crops.
    Used by :func:`train`; no page calls it."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + index)
    item = train_pairs[int(torch.randint(len(train_pairs), (1,), generator=g))]
    _, h, w = item["x"].shape
    top = int(torch.randint(h - patch + 1, (1,), generator=g))
    left = int(torch.randint(w - patch + 1, (1,), generator=g))
    both = torch.stack([item["x"], item["xt"]])[..., top : top + patch, left : left + patch]
    if torch.rand((), generator=g) < 0.5:
        both = both.flip(-1)
    return both.float().div(255.0)


# --------------------------------------------------------------------------- the loop


def train(cfg: PFrameTrainConfig | None = None, progress: bool = True) -> dict:
    """Train (or resume, or load the finished run of) the coder ``cfg`` describes.

    Returns ``{"model", "history", "manifest"}`` (the model on the CPU in eval mode, tables
    built). Defined in book section *Conditional coding in practice → Training*.
    """
    cfg = cfg or PFrameTrainConfig()
    s = cfg.resolved()
    out = Path(s["run_dir"])
    config.seed_everything(cfg.seed)
    device = config.device(cfg.device)
    net = cc.create(s["model"], s["N"], s["M"]).to(device)  # before Adam's state
    main = [p for n, p in net.named_parameters() if not n.endswith(".quantiles")]
    aux = [p for n, p in net.named_parameters() if n.endswith(".quantiles")]
    opt = torch.optim.Adam(main, lr=s["lr"])
    aux_opt = torch.optim.Adam(aux, lr=1e-3)
    step, seconds, history = 0, 0.0, []
    ckpt = checkpoints.resume(out, s, IDENTITY_KEYS)
    if ckpt is not None:
        stored = ckpt["settings"]
        net.load_state_dict({k: v for k, v in ckpt["model"].items() if not k.endswith(TABLES)},
                            strict=False)
        opt.load_state_dict(ckpt["optimizer"])
        aux_opt.load_state_dict(ckpt["aux_optimizer"])
        step, seconds, history = ckpt["step"], ckpt["seconds"], ckpt["history"]
        s["start"] = stored.get("start")
    elif s["init_from"] != "none":
        s["start"] = warm_start(net, s["init_from"])
    train_pairs = pairs("train", s["profile"])

    def save() -> None:
        out.mkdir(parents=True, exist_ok=True)
        last = history[-1] if history else {}
        state = {k: v for k, v in net.state_dict().items() if not k.endswith(TABLES)}
        checkpoints.save({"settings": s, "model": state, "optimizer": opt.state_dict(),
                          "aux_optimizer": aux_opt.state_dict(), "step": step,
                          "seconds": seconds, "history": history}, out / CHECKPOINT)
        checkpoints.save({"nctutor_version": __version__, "torch_version": torch.__version__,
                          "settings": s, "steps": step, "seconds": round(seconds, 1),
                          "parameters": cc.count_parameters(net),
                          "final": {k: v for k, v in last.items() if k != "step"}},
                         out / MANIFEST)

    bar = tqdm(total=s["steps"], initial=step, disable=not progress,
               desc=f"{s['model']} q{s['quality']} [{s['profile']}]")
    tic = time.perf_counter()
    net.train()
    try:
        while step < s["steps"]:
            lr = s["lr"] * (0.1 if step >= int(s["lr_drop"] * s["steps"]) else 1.0)
            for g in opt.param_groups:
                g["lr"] = lr
            first = step * s["batch_size"]
            batch = torch.stack([crops(train_pairs, i, s["patch_size"], cfg.seed)
                                 for i in range(first, first + s["batch_size"])])
            batch = batch.to(device, non_blocking=True)
            x, xt = batch[:, 0], batch[:, 1]
            result = net(x, xt)
            mse = F.mse_loss(result["x_hat"], x)
            bpp = sum(-torch.log2(v).sum() for v in result["likelihoods"].values()) / (
                x.shape[0] * x.shape[-2] * x.shape[-1])
            loss = s["lmbda"] * 255**2 * mse + bpp
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(main, 1.0)
            opt.step()
            aux_opt.zero_grad(set_to_none=True)
            aux_loss = net.aux_loss()
            aux_loss.backward()
            aux_opt.step()
            step += 1
            record = {"step": step, "loss": loss.item(), "bpp": bpp.item(),
                      "psnr": _psnr(mse.item())}
            if isinstance(net, cc.XGDC):
                record["psnr_d"] = _psnr(F.mse_loss(result["x_hat_d"], x).item())
                record["psnr_g"] = _psnr(F.mse_loss(result["x_hat_g"], x).item())
            history.append(record)
            bar.set_postfix(loss=f"{record['loss']:.3f}", bpp=f"{record['bpp']:.3f}")
            bar.update()
            if step % cfg.ckpt_every == 0:
                seconds += time.perf_counter() - tic
                tic = time.perf_counter()
                save()
    except KeyboardInterrupt:
        seconds += time.perf_counter() - tic
        save()
        bar.close()
        print(f"interrupted at step {step}; checkpoint saved in {out}: run again to resume")
        raise
    bar.close()
    seconds += time.perf_counter() - tic
    save()
    net.cpu().eval().update(force=True)  # the tables of the CPU, where files are coded
    return {"model": net, "history": history,
            "manifest": json.loads((out / MANIFEST).read_text())}


def warm_start(net: cc.PFrameCoder, source: str) -> dict:
    """Copy a trained model's weights into ``net``'s core (``source``: an exported weights file
    of the image codec or of a coder, or a run folder): tensors that match by name and shape
    whole, the first and last convolutions whose channels differ by their overlapping slice.
    Returns the record for the manifest. Defined in book section *Conditional coding in practice
    → Training*."""
    file = Path(source)
    file = file / CHECKPOINT if file.is_dir() else file
    if not file.is_file():
        raise CheckpointError(f"init_from {source}: no run folder, checkpoint or weights file. "
                              "Pass init_from='none' to start from scratch.")
    if file.name == CHECKPOINT:
        state, record = load_checkpoint(file)["model"], {"from": str(source)}
    else:
        man, state = checkpoints.read_exported(file)
        record = {"from": file.name, "sha256": man.get("sha256")}
        if (man.get("N"), man.get("M")) != (net.N, net.M):
            raise CheckpointError(f"{source} has N={man.get('N')}, M={man.get('M')}; this coder "
                                  f"N={net.N}, M={net.M}: start from weights of the same widths")
    own = net.state_dict()
    copied = 0
    for key, value in state.items():
        key = key if key in own or key.startswith("core.") else f"core.{key}"
        if key not in own or own[key].dim() != value.dim():
            continue
        target = own[key]
        region = tuple(slice(0, min(a, b)) for a, b in zip(target.shape, value.shape, strict=True))
        target[region] = value[region].to(target.dtype)
        copied += 1
    if not copied:
        raise CheckpointError(f"{source} shares no layer with {net.name}")
    net.load_state_dict(own)
    record["tensors_copied"] = copied
    return record


def export(run: str | Path, out_dir: str | Path) -> Path:
    """Write ``<out_dir>/<model>-q<Q>.pt`` (weights only, fp16; the entropy bottleneck's
    parameters, which set the probabilities of ``z``, stay fp32) and its manifest.

    What the package ships for the chapter *Conditional coding in practice* (read back by
    :func:`load_weights`); a maintainer's tool, no page calls it.
    """
    run = Path(run)
    ckpt = load_checkpoint(run / CHECKPOINT)
    manifest = json.loads((run / MANIFEST).read_text())
    s = manifest["settings"]
    state = {k: v.detach().cpu().half() if v.is_floating_point() and ".entropy_bottleneck."
             not in k else v.cpu() for k, v in ckpt["model"].items() if not k.endswith(TABLES)}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    file = out_dir / f"{s['model']}-q{s['quality']}.pt"
    atomic_write(file, lambda tmp: torch.save({"format": WEIGHTS_FORMAT, "model": state}, tmp))
    man = {"format": WEIGHTS_FORMAT, "model": s["model"], "quality": s["quality"],
           "profile": s["profile"], "N": s["N"], "M": s["M"], "dtype": "float16",
           "sha256": sha256(file), "bytes": file.stat().st_size, "steps": manifest["steps"],
           "seconds": manifest["seconds"], "parameters": manifest["parameters"],
           "final": manifest.get("final", {}), "settings": s,
           "history": summary(ckpt["history"]),
           "nctutor_version": __version__, "torch_version": torch.__version__,
           "machine": config.machine_info()}
    atomic_write(file.with_suffix(".json"), json.dumps(man, indent=2))
    return file


def summary(history: list[dict], window: int = 50) -> list[list[float]]:
    """A run's loss history, small: ``[[step, mean loss over the last window], …]``. Kept in
    exported manifests and the record of book section *Conditional coding in practice →
    Training*."""
    chunks = [history[i : i + window] for i in range(0, len(history), window)]
    return [[c[-1]["step"], sum(r["loss"] for r in c) / len(c)] for c in chunks]


def load_weights(file: str | Path) -> tuple[cc.PFrameCoder, dict]:
    """The coder of an exported weights file (manifest beside it), float32, eval mode, tables
    built; and the manifest. A damaged or foreign file raises :class:`CheckpointError`.

    Used by :func:`nctutor.zoo.pframe_model`; no page calls it.
    """
    man, state = checkpoints.read_exported(file)
    if man.get("model") not in cc.CODERS or not isinstance(state, dict):
        raise CheckpointError(f"{file} holds no P-frame coder ({man.get('model')!r})")
    net = cc.create(man["model"], man["N"], man["M"])
    own = net.state_dict()
    try:
        own.update({k: v.float() if v.is_floating_point() else v for k, v in state.items()
                    if not k.endswith(TABLES)})
        net.load_state_dict(own)
        if set(own) - set(state) - {k for k in own if k.endswith(TABLES)}:
            raise KeyError(f"missing {sorted(set(own) - set(state))[:3]}")
    except (RuntimeError, KeyError) as e:
        raise CheckpointError(f"{file} does not fit {man['model']} N={man['N']} M={man['M']}: "
                              f"{str(e).splitlines()[0]}") from e
    net.eval().update(force=True)
    return net, man


def _psnr(mse: float) -> float:
    return 10 * math.log10(1.0 / max(mse, 1e-12))
