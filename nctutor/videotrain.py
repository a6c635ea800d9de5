"""The trainer of the binary video codec (:mod:`nctutor.codecs.video`): short, flat, resumable.

Chapter *A binary video codec with delta-sigma modulation*, section *Training*. The image trainer
(:mod:`nctutor.train`) is built around a rate-distortion loss and entropy bottlenecks; this codec
has neither (its bits are binary and its rate is set by the number of kept channels), so its
loop is shorter. It reads top to bottom:

- the settings (:class:`VideoTrainConfig`, sizes of the profile from
  :data:`nctutor.config.VIDEO_SIZES`), the model (seed ``seed``: every modulator order starts from
  the *same* weights, since the order has no parameters), Adam;
- the data: groups of ``frames`` consecutive frames cropped at random from the training segments
  of :data:`nctutor.data.SPLIT` (:class:`nctutor.data.GroupDataset`, seeded per index), and for each
  group a number of kept channels ``K`` drawn from :data:`nctutor.codecs.video.CHANNEL_STEPS`
  (channel dropout); step ``s`` always sees the same groups and ``K``, so the three orders see the
  same data, and a resumed run continues exactly;
- the loss: the MSE of the decoded group (float, no rounding); the learning rate drops 10×
  after ``lr_drop`` of the steps;
- validation every ``val_every`` steps: PSNR of central crops of the validation segments (two
  groups per clip) at every ``K``; the history holds both (the Fig. 2 analog);
- ``checkpoint.pt`` + ``manifest.json`` every ``ckpt_every`` steps, at the end and on Ctrl-C.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import __version__, checkpoints, config, data
from .checkpoints import CHECKPOINT, MANIFEST, WEIGHTS_FORMAT, load_checkpoint
from .codecs import video
from .errors import CheckpointError
from .files import atomic_write, sha256

#: Settings that make a run what it is: a checkpoint with other values is not resumed.
IDENTITY_KEYS = ("model", "N", "C", "frames", "patch_size", "batch_size", "seed", "init_from")


@dataclass
class VideoTrainConfig:
    """What to train and how; unset sizes come from the profile (:data:`config.VIDEO_SIZES`);
    ``device`` is where (default: CUDA when present, as for the image codecs).

    Defined in book section *A binary video codec with delta-sigma modulation → Training*.
    """

    model: str = "frameconv3d-order1"
    profile: str | None = None
    steps: int | None = None
    batch_size: int | None = None
    patch_size: int | None = None
    frames: int | None = None
    lr: float | None = None
    N: int | None = None
    C: int | None = None
    seed: int = 0
    out_dir: str | None = None
    ckpt_every: int = 500
    init_from: str | None = None
    device: str | None = None

    def resolved(self) -> dict:
        """Every setting, with the profile's values filled in (stored in the manifest)."""
        if self.model not in video.MODELS:
            raise ValueError(f"unknown video model {self.model!r}; choose one of "
                             f"{', '.join(video.MODELS)}")
        p = config.get_profile(self.profile)
        sizes = config.VIDEO_SIZES[p.name]
        out = asdict(self)
        out["profile"] = p.name
        for key in ("steps", "batch_size", "patch_size", "frames", "lr", "N", "C"):
            if out[key] is None:
                out[key] = getattr(sizes, key)
        if out["patch_size"] % video.STRIDE:
            raise ValueError(f"patch_size {out['patch_size']} must be a multiple of "
                             f"{video.STRIDE}, the downsampling factor of the codec")
        for key in ("lr_drop", "val_every", "val_crop", "limit"):
            out[key] = getattr(sizes, key)
        out["order"] = video.MODELS[self.model]
        out["run_dir"] = str(self.out_dir or config.cache_dir() / "runs" / f"{self.model}-{p.name}")
        return out


def train(cfg: VideoTrainConfig | None = None, progress: bool = True) -> dict:
    """Train (or resume, or load the finished run of) the codec ``cfg`` describes.

    It trains on ``cfg.device`` (default: CUDA when present, :func:`nctutor.config.device`).
    Returns ``{"model", "history", "manifest"}`` (the model on the CPU in eval mode). Defined in
    book section *A binary video codec with delta-sigma modulation → Training*.
    """
    cfg = cfg or VideoTrainConfig()
    s = cfg.resolved()
    out = Path(s["run_dir"])
    config.seed_everything(cfg.seed)
    device = config.device(cfg.device)
    net = video.BinaryVideoCodec(s["order"], s["N"], s["C"]).to(device)  # before Adam's state
    opt = torch.optim.Adam(net.parameters(), lr=s["lr"])
    step, seconds, history = 0, 0.0, []
    ckpt = checkpoints.resume(out, s, IDENTITY_KEYS)
    if ckpt is not None:
        stored = ckpt["settings"]
        net.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        step, seconds, history = ckpt["step"], ckpt["seconds"], ckpt["history"]
        s["init"] = stored.get("init")
    elif cfg.init_from:  # warm start: weights only
        state, s["init"] = _read_weights(cfg.init_from, s)
        net.load_state_dict(state)

    steps_k = net.channel_steps()
    train_set = data.GroupDataset(data.split_frames("train", s["limit"]), s["frames"],
                                  s["patch_size"], epoch_size=s["steps"] * s["batch_size"],
                                  seed=cfg.seed)
    val_groups = _validation_groups(s) if s["val_every"] else []

    def save() -> None:
        out.mkdir(parents=True, exist_ok=True)
        last = history[-1] if history else {}
        checkpoints.save({"settings": s, "model": net.state_dict(), "optimizer": opt.state_dict(),
                          "step": step, "seconds": seconds, "history": history}, out / CHECKPOINT)
        checkpoints.save({"nctutor_version": __version__, "torch_version": torch.__version__,
                          "settings": s, "data": {k: v for k, v in data.SPLIT.items()},
                          "steps": step, "seconds": round(seconds, 1),
                          "final": {k: v for k, v in last.items() if k != "step"}},
                         out / MANIFEST)

    bar = tqdm(total=s["steps"], initial=step, disable=not progress,
               desc=f"{cfg.model} [{s['profile']}]")
    tic = time.perf_counter()
    net.train()
    try:
        while step < s["steps"]:
            lr = s["lr"] * (0.1 if step >= int(s["lr_drop"] * s["steps"]) else 1.0)
            for g in opt.param_groups:
                g["lr"] = lr
            first = step * s["batch_size"]
            x = torch.stack([train_set[i] for i in range(first, first + s["batch_size"])])
            x = x.to(device, non_blocking=True)
            gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
            k = torch.tensor(steps_k)[torch.randint(len(steps_k), (len(x),), generator=gen)]
            loss = torch.mean((net(x, k)["x_hat"] - x) ** 2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            step += 1
            record = {"step": step, "loss": loss.item(), "psnr": _psnr(loss.item())}
            if val_groups and (step % s["val_every"] == 0 or step == s["steps"]):
                record["val_psnr"] = validate(net, val_groups)
            history.append(record)
            bar.set_postfix(psnr=f"{record['psnr']:.2f}")
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
    net.cpu().eval()
    return {"model": net, "history": history,
            "manifest": json.loads((out / MANIFEST).read_text())}


@torch.no_grad()
def validate(net: video.BinaryVideoCodec, groups: list[torch.Tensor]) -> dict[str, float]:
    """Mean PSNR (dB, float frames clamped to [0, 1]) of ``groups`` ``(T, 3, H, W)`` at every
    number of kept channels: ``{"K": psnr}``; the model's train/eval mode is left as it was.

    The validation curve of book section *A binary video codec with delta-sigma modulation →
    Training*; no page calls it.
    """
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    groups = [g.to(device) for g in groups]
    out = {}
    for k in net.channel_steps():
        mses = [float(torch.mean((net(g[None], k)["x_hat"][0].clamp(0, 1) - g) ** 2))
                for g in groups]
        out[str(k)] = sum(_psnr(m) for m in mses) / len(mses)
    net.train(was_training)
    return out


def export(run: str | Path, out_dir: str | Path) -> Path:
    """Write ``<out_dir>/<model>.pt`` (weights only, fp16) and its manifest ``<model>.json``.

    What the package ships for the chapter *A binary video codec with delta-sigma modulation*
    (read back by :func:`load_weights`); a maintainer's tool, no page calls it.
    """
    run = Path(run)
    ckpt = load_checkpoint(run / CHECKPOINT)
    manifest = json.loads((run / MANIFEST).read_text())
    s = manifest["settings"]
    state = {k: v.detach().cpu().half() if v.is_floating_point() else v.cpu()
             for k, v in ckpt["model"].items()}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    file = out_dir / f"{s['model']}.pt"
    atomic_write(file, lambda tmp: torch.save({"format": WEIGHTS_FORMAT, "model": state}, tmp))
    man = {"format": WEIGHTS_FORMAT, "model": s["model"], "profile": s["profile"], "N": s["N"],
           "C": s["C"], "order": s["order"], "frames": s["frames"], "dtype": "float16",
           "sha256": sha256(file), "bytes": file.stat().st_size, "steps": manifest["steps"],
           "seconds": manifest["seconds"], "final": manifest.get("final", {}), "settings": s,
           "history": summary(ckpt["history"]),
           "data": manifest.get("data"), "nctutor_version": __version__,
           "torch_version": torch.__version__, "machine": config.machine_info()}
    atomic_write(file.with_suffix(".json"), json.dumps(man, indent=2))
    return file


#: Loss points kept of a run's history in its exported manifest: means over this many steps.
HISTORY_WINDOW = 50


def summary(history: list[dict], window: int = HISTORY_WINDOW) -> dict:
    """A run's history, small: ``{"loss": [[step, mean loss over the last window], …],
    "val_psnr": [[step, {K: psnr}], …]}`` (every validation).

    Kept in exported manifests (the Fig. 2 analog of book section *A binary video codec with
    delta-sigma modulation → Training*); no page calls it.
    """
    chunks = [history[i : i + window] for i in range(0, len(history), window)]
    return {"loss": [[c[-1]["step"], sum(r["loss"] for r in c) / len(c)] for c in chunks],
            "val_psnr": [[r["step"], r["val_psnr"]] for r in history if "val_psnr" in r]}


def load_weights(file: str | Path) -> tuple[video.BinaryVideoCodec, dict]:
    """The codec of an exported weights file (its manifest beside it), in float32 eval mode,
    and the manifest. A damaged or foreign file raises :class:`CheckpointError`.

    Used by :func:`nctutor.zoo.video_model` (book section *A binary video codec with delta-sigma
    modulation → Real bytes*); no page calls it.
    """
    man, state = checkpoints.read_exported(file)
    if man.get("model") not in video.MODELS or not isinstance(state, dict):
        raise CheckpointError(f"{file} holds no binary video codec ({man.get('model')!r})")
    net = video.BinaryVideoCodec(video.MODELS[man["model"]], man["N"], man["C"])
    try:
        net.load_state_dict({k: v.float() for k, v in state.items()})
    except (RuntimeError, KeyError) as e:
        raise CheckpointError(f"{file} does not fit {man['model']} N={man['N']} C={man['C']}: "
                              f"{str(e).splitlines()[0]}") from e
    return net.eval(), man


# --------------------------------------------------------------------------- helpers


def _psnr(mse: float) -> float:
    return 10 * math.log10(1.0 / max(mse, 1e-12))


def _validation_groups(s: dict) -> list[torch.Tensor]:
    """Two groups (the first and the last ``frames``) of each validation segment, centre crop."""
    groups = []
    for x in data.split_frames("val", s["limit"]):
        x = data.center_crop(x.float().div(255.0), s["val_crop"])
        t = s["frames"]
        for first in sorted({0, x.shape[0] - t}):
            g = x[first : first + t]
            h, w = (d - d % video.STRIDE for d in g.shape[-2:])
            groups.append(g[..., :h, :w])
    return groups


def _read_weights(source: str, s: dict) -> tuple[dict, dict]:
    """The state dict of a run folder / checkpoint / exported file of the same widths, and its
    record for the lineage (a warm start in another session, when the run cache is gone)."""
    file = Path(source)
    file = file / CHECKPOINT if file.is_dir() else file
    if not file.is_file():
        raise CheckpointError(f"init_from {source}: no run folder, checkpoint or weights file")
    if file.name != CHECKPOINT and file.with_suffix(".json").is_file():
        man, state = checkpoints.read_exported(file)
        stored, record = man, {"from": str(source), "sha256": man.get("sha256"),
                               "steps": man.get("steps")}
        state = {k: v.float() for k, v in state.items()}
    else:
        ckpt = load_checkpoint(file)
        stored, state = ckpt.get("settings", {}), ckpt.get("model")
        record = {"from": str(source), "steps": ckpt.get("step")}
    if (stored.get("N"), stored.get("C")) != (s["N"], s["C"]):
        raise CheckpointError(f"init_from {source} has N={stored.get('N')} C={stored.get('C')}, "
                              f"this run N={s['N']} C={s['C']}")
    if stored.get("model") != s["model"]:
        record["model"] = stored.get("model")
    return state, record
