"""One small trainer for every codec in the book.

Chapter *Your first learned codec → Training*; from the shell in *How to run this book →
Training from the command line*; its loss in *Transform coding with learned priors → The loss
and the λ ladder*.

In the spirit of nanoGPT: a dataclass config, one loop you can read top to bottom.

- data: random crops of BSDS500 (:class:`nctutor.data.PatchDataset`), seeded per index so that a
  run repeats exactly and a resumed run sees the same crops it would have seen;
- loss: CompressAI's :class:`~compressai.losses.RateDistortionLoss`, ``λ·255²·MSE + bpp`` where
  the rate is ``−Σ log2 likelihoods / pixels`` under additive uniform noise (Eq. (18)-(19) of the
  code-space predictor supplement, with the sign of its erratum; book section *From rounding to
  bits → The probability of a rounded value*);
- two Adam optimizers: the network, and the entropy bottleneck's quantiles (auxiliary loss);
- a tqdm bar with loss, bpp and PSNR; validation on central crops of Kodak images;
- checkpoints (``checkpoint.pt`` + ``manifest.json``) written atomically every ``ckpt_every``
  steps, at the end, and on Ctrl-C; a run restarted with the same config resumes where it stopped.
- under ``torchrun`` (several processes) it trains with PyTorch DDP, no code change needed.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from compressai.losses import RateDistortionLoss
from tqdm.auto import tqdm

from . import __version__, checkpoints, codecs, config, data
from .checkpoints import CHECKPOINT, MANIFEST, load_checkpoint
from .errors import CheckpointError


@dataclass
class TrainConfig:
    """What to train and how; unset sizes come from the profile (:mod:`nctutor.config`).

    Defined in book section *Your first learned codec → Training*.
    """

    model: str = "bmshj2018-factorized"
    quality: int = 3
    profile: str | None = None
    steps: int | None = None
    batch_size: int | None = None
    patch_size: int | None = None
    lr: float | None = None
    N: int | None = None
    M: int | None = None
    seed: int = 0
    out_dir: str | None = None
    ckpt_every: int = 500
    device: str | None = None
    train_split: str = "train"
    init_from: str | None = None
    amp: bool | None = None

    def resolved(self) -> dict:
        """Every setting, with the profile's values filled in (stored in the manifest)."""
        p = config.get_profile(self.profile)
        out = asdict(self)
        out["model"] = codecs.canonical_name(self.model)
        out["profile"] = p.name
        for key in ("steps", "batch_size", "patch_size", "lr", "N", "M"):
            if out[key] is None:
                out[key] = getattr(p, key)
        stride = codecs.STRIDES[out["model"]]
        if out["patch_size"] % stride:
            raise ValueError(f"patch_size {out['patch_size']} must be a multiple of {stride}, "
                             f"the downsampling factor of {out['model']}")
        if out["amp"] is None:  # the profile's choice, on CUDA only
            out["amp"] = p.amp and config.device(self.device).type == "cuda"
        out["lmbda"] = codecs.lmbda(self.quality)
        out["run_dir"] = str(run_dir(self))
        return out


def run_dir(cfg: TrainConfig) -> Path:
    """Where a run keeps its checkpoint: ``out_dir``, else ``<cache>/runs/<model>-q<Q>-<profile>``.

    Used by the chapter *How to run this book → Training from the command line* (where a run
    resumes) and by :func:`nctutor.zoo.load`.
    """
    if cfg.out_dir:
        return Path(cfg.out_dir)
    profile = config.get_profile(cfg.profile).name
    name = f"{codecs.canonical_name(cfg.model)}-q{cfg.quality}-{profile}"
    return config.cache_dir() / "runs" / name


@dataclass
class TrainResult:
    """A trained model (in eval mode, entropy coders updated), its history and manifest.

    Defined in book section *Your first learned codec → Training* (its ``history`` is plotted).
    """

    model: torch.nn.Module
    history: list[dict] = field(default_factory=list)
    manifest: dict = field(default_factory=dict)


def float_psnr(mse: float) -> float:
    """PSNR in dB of a mean squared error between *float* ``[0, 1]`` images: ``-10·log10(mse)``.

    The training history's ``psnr``, computed on the float MSE of the loss (not the 8-bit PSNR of
    a decoded image, :func:`nctutor.rd.psnr`), plotted in book section *Your first learned codec →
    Training*.
    """
    return 10 * math.log10(1.0 / max(mse, 1e-12))


IDENTITY_KEYS = ("model", "quality", "N", "M", "patch_size", "batch_size", "seed", "train_split",
                 "init_from")


@torch.no_grad()
def validate(model: torch.nn.Module, images: data.ImageSet, crop: int, device,
             stride: int = 64) -> dict:
    """Mean estimated bpp (from likelihoods, rounding as at test time) and PSNR on central crops.

    The likelihoods are bin probabilities, Eq. (17) of the code-space predictor supplement. Used
    by :func:`train` (the ``val_*`` entries of the history, chapter *Your first learned codec →
    Training*); no page calls it.
    """
    model.eval()
    bpps, mses = [], []
    for i in range(len(images)):
        x = data.center_crop(images[i], crop)[None].to(device)
        h, w = x.shape[-2:]
        out = model(codecs.pad(x, stride))  # the one stride rule: pad, then crop back
        bits = sum(-torch.log2(lk).sum() for lk in out["likelihoods"].values())
        bpps.append(float(bits) / (h * w))
        x_hat = codecs.crop(out["x_hat"], h, w).clamp(0, 1)
        mses.append(float(torch.mean((x_hat - x) ** 2)))
    model.train()
    return {"bpp": sum(bpps) / len(bpps), "psnr": sum(float_psnr(m) for m in mses) / len(mses)}


TRANSFORMS = ("g_a", "g_s", "h_a", "h_s")


def mixed_precision(net: torch.nn.Module) -> torch.nn.Module:
    """Run the four transforms under bfloat16 autocast, and nothing else: "where safe".

    The transforms are convolutions and GDN, which bfloat16 serves well; the entropy models are
    not touched, because a likelihood is a difference of two CDF values (Eq. (17) of the
    code-space predictor supplement) and bfloat16's 8-bit mantissa would destroy it. Each
    transform's output is cast back to float32 before it reaches them. The module's weights and
    state dict are unchanged (only each transform's ``forward`` is wrapped), so checkpoints are
    the same with and without it. Used by :func:`train` when ``amp`` is on (the ``gpu``
    profile on CUDA; chapter *How to run this book → Profiles*).
    """
    for name in TRANSFORMS:
        module = getattr(net, name, None)
        if module is None:
            continue
        forward = module.forward

        def autocast_forward(x, forward=forward):
            with torch.autocast(x.device.type, dtype=torch.bfloat16):
                return forward(x).float()

        module.forward = autocast_forward
    return net


def _split_parameters(model: torch.nn.Module):
    main = [p for n, p in model.named_parameters() if not n.endswith(".quantiles")]
    aux = [p for n, p in model.named_parameters() if n.endswith(".quantiles")]
    return main, aux


def train(cfg: TrainConfig | None = None, progress: bool = True) -> TrainResult:
    """Train (or resume, or just load a finished run of) the codec described by ``cfg``.

    Defined in book section *Your first learned codec → Training*; from the shell in *How to run
    this book → Training from the command line*. The loss is that of *Transform coding with
    learned priors → The loss and the λ ladder* (Eq. (19) of the code-space predictor supplement,
    sign corrected).
    """
    cfg = cfg or TrainConfig()
    settings = cfg.resolved()
    profile = config.get_profile(cfg.profile)
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    rank, world = 0, 1
    if distributed:
        if not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
    dev = config.device(cfg.device)
    if distributed and dev.type == "cuda":
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
        torch.cuda.set_device(dev)

    config.seed_everything(cfg.seed)
    net = codecs.create(settings["model"], settings["N"], settings["M"]).to(dev)
    if settings["amp"]:
        mixed_precision(net)
    main_params, aux_params = _split_parameters(net)
    opt = torch.optim.Adam(main_params, lr=settings["lr"])
    aux_opt = torch.optim.Adam(aux_params, lr=profile.aux_lr)
    criterion = RateDistortionLoss(lmbda=settings["lmbda"])
    steps = settings["steps"]
    drop_at = int(profile.lr_drop * steps)

    out = Path(settings["run_dir"])
    ckpt_file = out / CHECKPOINT
    step, seconds, history = 0, 0.0, []
    if ckpt_file.exists():
        ckpt = load_checkpoint(ckpt_file, map_location=dev)
        stored = ckpt.get("settings", {})
        mismatch = {k: (stored.get(k), settings[k]) for k in IDENTITY_KEYS
                    if stored.get(k) != settings[k]}
        if mismatch:
            raise CheckpointError(
                f"{ckpt_file} was made for another run (stored vs asked: {mismatch}). "
                f"Use another out_dir, or delete the folder to start afresh."
            )
        net.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        aux_opt.load_state_dict(ckpt["aux_optimizer"])
        torch.set_rng_state(ckpt["rng"].cpu())
        step, seconds, history = ckpt["step"], ckpt["seconds"], ckpt["history"]
        settings["init"] = stored.get("init")
    elif cfg.init_from:
        state, settings["init"] = checkpoints.warm_start(cfg.init_from, settings, dev)
        try:
            net.load_state_dict(state)
        except (RuntimeError, KeyError, TypeError, AttributeError) as e:
            raise CheckpointError(f"init_from {cfg.init_from}: weights do not fit: {e}") from e

    ddp = torch.nn.parallel.DistributedDataParallel(
        net, find_unused_parameters=True) if distributed else net

    dataset = data.PatchDataset(data.bsds500(cfg.train_split), settings["patch_size"],
                                epoch_size=steps * settings["batch_size"] * world, seed=cfg.seed)
    # Step s of rank r uses the items [(s·world + r)·B, … + B): a resumed run continues exactly.
    bs = settings["batch_size"]
    indices = [i for s in range(step, steps) for i in range((s * world + rank) * bs,
                                                          (s * world + rank + 1) * bs)]
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(dataset, indices), batch_size=bs, shuffle=False,
        generator=torch.Generator().manual_seed(cfg.seed),  # keeps the global RNG untouched
        num_workers=profile.num_workers if dev.type == "cuda" else min(profile.num_workers, 1),
        persistent_workers=False)

    val_images = data.kodak(profile.eval_images) if profile.val_every else None

    def save() -> None:
        if rank != 0:
            return
        out.mkdir(parents=True, exist_ok=True)
        checkpoints.save({"settings": settings, "model": net.state_dict(),
                      "optimizer": opt.state_dict(), "aux_optimizer": aux_opt.state_dict(),
                      "rng": torch.get_rng_state(), "step": step, "seconds": seconds,
                      "history": history}, ckpt_file)
        checkpoints.save(_manifest(settings, step, seconds, history), out / MANIFEST)

    bar = tqdm(total=steps, initial=step, disable=not progress or rank != 0,
               desc=f"{settings['model']} q{cfg.quality} [{profile.name}]")
    net.train()
    tic = time.perf_counter()
    try:
        for x in loader:
            for g in opt.param_groups:
                g["lr"] = settings["lr"] * (0.1 if step >= drop_at else 1.0)
            x = x.to(dev, non_blocking=True)
            opt.zero_grad(set_to_none=True)
            result = criterion(ddp(x), x)
            result["loss"].backward()
            torch.nn.utils.clip_grad_norm_(main_params, 1.0)
            opt.step()

            aux_opt.zero_grad(set_to_none=True)
            aux_loss = net.aux_loss()
            aux_loss.backward()
            if distributed:  # the quantiles live outside DDP's forward: average them by hand
                for p in aux_params:
                    dist.all_reduce(p.grad)
                    p.grad /= world
            aux_opt.step()

            step += 1
            record = {"step": step, "loss": result["loss"].item(),
                      "bpp": result["bpp_loss"].item(),
                      "psnr": float_psnr(result["mse_loss"].item()), "aux": aux_loss.item()}
            if val_images is not None and (step % profile.val_every == 0 or step == steps):
                record.update({f"val_{k}": v for k, v in
                               validate(net, val_images, profile.val_crop, dev,
                                        codecs.STRIDES[settings["model"]]).items()})
            history.append(record)
            bar.set_postfix(loss=f"{record['loss']:.3f}", bpp=f"{record['bpp']:.3f}",
                            psnr=f"{record['psnr']:.2f}")
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
    if distributed:
        dist.barrier()

    if settings["amp"]:  # the returned model runs in float32, as a loaded one does
        plain = codecs.create(settings["model"], settings["N"], settings["M"]).to(dev)
        plain.load_state_dict(net.state_dict())
        net = plain
    net.eval()
    net.update(force=True)
    return TrainResult(net.cpu(), history, _manifest(settings, step, seconds, history))


def _manifest(settings: dict, step: int, seconds: float, history: list[dict]) -> dict:
    last = history[-1] if history else {}
    return {
        "nctutor_version": __version__,
        "torch_version": torch.__version__,
        "settings": settings,
        "data": {"train": f"bsds500/{settings['train_split']}",
                 "count": len(data.files(f"bsds500/{settings['train_split']}"))},
        "steps": step,
        "seconds": round(seconds, 1),
        "final": {k: v for k, v in last.items() if k != "step"},
    }
