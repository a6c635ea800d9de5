"""One small trainer for every codec in the book.

Chapter *Your first learned codec → Training*; from the shell in *How to run this book →
Training from the command line*; its loss in *Transform coding with learned priors → The loss
and the λ ladder*.

In the spirit of nanoGPT and of CompressAI's ``examples/train.py``: a dataclass config, and the
loop, :func:`train`, right below it, in four parts you can read top to bottom:

- :func:`setup`: the model, the two Adam optimizers (the network, and the entropy bottleneck's
  quantiles: the auxiliary loss), CompressAI's :class:`~compressai.losses.RateDistortionLoss`
  ``λ·255²·MSE + bpp`` (the rate is ``−Σ log2 likelihoods / pixels`` under additive uniform
  noise, Eq. (18)-(19) of the code-space predictor supplement, with the sign of its erratum; book
  section *From rounding to bits → The probability of a rounded value*), the data (random crops
  of BSDS500, :class:`nctutor.data.PatchDataset`, seeded per index so that a run repeats exactly
  and a resumed run sees the same crops it would have seen), and where the run starts: its own
  checkpoint (resume), another run's weights (``init_from``, :func:`nctutor.checkpoints.warm_start`)
  or scratch;
- :func:`train_one_step`: one step of both optimizers and the step's record in the history
  (loss, bpp, PSNR; validation on central crops of Kodak images when due);
- :func:`save`: ``checkpoint.pt`` + ``manifest.json``, written atomically every ``ckpt_every``
  steps, at the end, and on Ctrl-C; a run restarted with the same config resumes where it stopped;
- :func:`finish`: the trained model, in eval mode with its entropy coders updated.

Under ``torchrun`` (several processes) it trains with PyTorch DDP, no code change needed.
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
    metric: str = "mse"

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
        out["lmbda"] = codecs.lmbda(self.quality, self.metric)
        if self.metric == "ms-ssim" and out["patch_size"] < MS_SSIM_MIN_PATCH:
            raise ValueError(f"MS-SSIM training needs patches of at least {MS_SSIM_MIN_PATCH} "
                             f"pixels (5 scales, an 11-pixel window), got {out['patch_size']}: "
                             f"pass patch_size=192 (nctutor train --patch-size 192)")
        out["run_dir"] = str(run_dir(self))
        return out


@dataclass
class TrainResult:
    """A trained model (in eval mode, entropy coders updated), its history and manifest.

    Defined in book section *Your first learned codec → Training* (its ``history`` is plotted).
    """

    model: torch.nn.Module
    history: list[dict] = field(default_factory=list)
    manifest: dict = field(default_factory=dict)


def train(cfg: TrainConfig | None = None, progress: bool = True) -> TrainResult:
    """Train (or resume, or just load a finished run of) the codec described by ``cfg``.

    Defined in book section *Your first learned codec → Training*; from the shell in *How to run
    this book → Training from the command line*. The loss is that of *Transform coding with
    learned priors → The loss and the λ ladder* (Eq. (19) of the code-space predictor supplement,
    sign corrected).
    """
    run = setup(cfg or TrainConfig())
    bar = tqdm(total=run.settings["steps"], initial=run.step,
               disable=not progress or run.rank != 0,
               desc=f"{run.settings['model']} q{run.settings['quality']} [{run.profile.name}]")
    try:
        for x in run.loader:  # only the steps still to do: a resumed run continues
            record = train_one_step(run, x)
            bar.set_postfix(loss=f"{record['loss']:.3f}", bpp=f"{record['bpp']:.3f}",
                            psnr=f"{record['psnr']:.2f}")
            bar.update()
            if run.step % run.cfg.ckpt_every == 0:
                save(run)
    except KeyboardInterrupt:  # Ctrl-C: keep the work done so far
        save(run)
        bar.close()
        print(f"interrupted at step {run.step}; checkpoint saved in {run.settings['run_dir']}: "
              f"run again to resume")
        raise
    bar.close()
    save(run)
    return finish(run)


# --------------------------------------------------------------------------- the parts of train


@dataclass
class Run:
    """Everything a run holds while it trains: built by :func:`setup`, used by the other parts
    of :func:`train` (book section *Your first learned codec → Training*); no page calls it.

    ``net`` is the model (a checkpoint holds its state dict), ``ddp`` what the forward pass goes
    through: ``net`` wrapped in PyTorch DDP under ``torchrun``, else ``net`` itself. ``rank`` and
    ``world`` are this process's rank and the number of processes (0 and 1 without torchrun).
    ``step``, ``seconds`` and ``history`` are what a checkpoint carries over to a resumed run;
    ``tic`` is when ``seconds`` was last brought up to date.
    """

    cfg: TrainConfig
    settings: dict
    profile: config.Profile
    device: torch.device
    rank: int
    world: int
    net: torch.nn.Module
    opt: torch.optim.Optimizer
    aux_opt: torch.optim.Optimizer
    criterion: torch.nn.Module
    ddp: torch.nn.Module | None = None
    loader: torch.utils.data.DataLoader | None = None
    val_images: data.ImageSet | None = None
    step: int = 0
    seconds: float = 0.0
    history: list[dict] = field(default_factory=list)
    tic: float = 0.0


def setup(cfg: TrainConfig) -> Run:
    """The model, its two optimizers, the loss, the data, and where the run starts.

    The start is the run's own checkpoint in its run folder if there is one (resume: weights,
    optimizers, RNG, step and history), else ``cfg.init_from``'s weights
    (:func:`nctutor.checkpoints.warm_start`, which also records their lineage), else fresh
    weights of seed ``cfg.seed``. Used by :func:`train` (book section *Your first learned codec
    → Training*); no page calls it.
    """
    settings = cfg.resolved()
    profile = config.get_profile(cfg.profile)
    device, rank, world = _init_distributed(cfg.device)
    config.seed_everything(cfg.seed)
    net = codecs.create(settings["model"], settings["N"], settings["M"]).to(device)
    if settings["amp"]:
        mixed_precision(net)
    main_params, aux_params = _split_parameters(net)
    run = Run(cfg, settings, profile, device, rank, world, net,
              opt=torch.optim.Adam(main_params, lr=settings["lr"]),
              aux_opt=torch.optim.Adam(aux_params or [torch.zeros(0, requires_grad=True)],
                                       lr=profile.aux_lr),  # none: no entropy bottleneck
              criterion=RateDistortionLoss(lmbda=settings["lmbda"], metric=settings["metric"]))

    ckpt_file = Path(settings["run_dir"]) / CHECKPOINT
    if ckpt_file.exists():  # resume
        ckpt = load_checkpoint(ckpt_file, map_location=device)
        stored = {**_BEFORE, **ckpt.get("settings", {})}
        mismatch = {k: (stored.get(k), settings[k]) for k in IDENTITY_KEYS
                    if stored.get(k) != settings[k]}
        if mismatch:
            raise CheckpointError(
                f"{ckpt_file} was made for another run (stored vs asked: {mismatch}). "
                f"Use another out_dir, or delete the folder to start afresh."
            )
        net.load_state_dict(ckpt["model"])
        run.opt.load_state_dict(ckpt["optimizer"])
        run.aux_opt.load_state_dict(ckpt["aux_optimizer"])
        torch.set_rng_state(ckpt["rng"].cpu())
        run.step, run.seconds, run.history = ckpt["step"], ckpt["seconds"], ckpt["history"]
        settings["init"] = stored.get("init")
    elif cfg.init_from:  # warm start
        state, settings["init"] = checkpoints.warm_start(cfg.init_from, settings, device)
        try:
            if "model" in settings["init"]:  # another architecture: its matching weights
                fresh = checkpoints.load_matching(net, state)
                settings["init"]["fresh"] = sorted({k.rsplit(".", 1)[0] for k in fresh})
            else:
                net.load_state_dict(state)
        except (RuntimeError, KeyError, TypeError, AttributeError) as e:
            raise CheckpointError(f"init_from {cfg.init_from}: weights do not fit: {e}") from e

    run.ddp = torch.nn.parallel.DistributedDataParallel(
        net, find_unused_parameters=True) if world > 1 else net
    run.loader = _loader(run)
    run.val_images = data.kodak(profile.eval_images) if profile.val_every else None
    run.tic = time.perf_counter()
    return run


def train_one_step(run: Run, x: torch.Tensor) -> dict:
    """One step on the batch ``x``: the rate-distortion loss and its optimizer step, the
    auxiliary loss (the entropy bottleneck's quantiles) and its step; returns the step's record,
    also appended to ``run.history`` (with the validation figures when they are due).

    Used by :func:`train` (book section *Your first learned codec → Training*, whose plot shows
    the history); no page calls it.
    """
    settings, net = run.settings, run.net
    main_params = run.opt.param_groups[0]["params"]  # what each optimizer updates (setup)
    aux_params = run.aux_opt.param_groups[0]["params"]  # the quantiles
    drop = run.step >= int(run.profile.lr_drop * settings["steps"])  # 10x smaller near the end
    for g in run.opt.param_groups:
        g["lr"] = settings["lr"] * (0.1 if drop else 1.0)

    x = x.to(run.device, non_blocking=True)
    run.opt.zero_grad(set_to_none=True)
    out = run.ddp(x)
    result = run.criterion(out, x)
    result["loss"].backward()
    torch.nn.utils.clip_grad_norm_(main_params, 1.0)
    run.opt.step()

    run.aux_opt.zero_grad(set_to_none=True)
    aux_loss = torch.as_tensor(net.aux_loss(), dtype=torch.float32)  # 0 without a bottleneck
    if aux_loss.requires_grad:
        aux_loss.backward()
        if run.world > 1:  # the quantiles live outside DDP's forward: average them by hand
            for p in aux_params:
                dist.all_reduce(p.grad)
                p.grad /= run.world
        run.aux_opt.step()

    run.step += 1
    mse = result["mse_loss"] if "mse_loss" in result else torch.mean((out["x_hat"] - x) ** 2)
    record = {"step": run.step, "loss": result["loss"].item(), "bpp": result["bpp_loss"].item(),
              "psnr": float_psnr(mse.item()), "aux": aux_loss.item()}
    if "ms_ssim_loss" in result:
        record["ms_ssim"] = result["ms_ssim_loss"].item()
    every = run.profile.val_every
    if run.val_images is not None and (run.step % every == 0 or run.step == settings["steps"]):
        metrics = validate(net, run.val_images, run.profile.val_crop, run.device,
                           codecs.STRIDES[settings["model"]])
        record.update({f"val_{k}": v for k, v in metrics.items()})
    run.history.append(record)
    return record


def save(run: Run) -> None:
    """Bring ``run.seconds`` up to date and (rank 0 only) write the run folder's
    ``checkpoint.pt`` (weights, both optimizers, RNG, step, seconds, history: what a resumed run
    needs) and ``manifest.json`` (settings, versions, data, steps, final figures), atomically.

    Used by :func:`train` (book section *How to run this book → Training from the command line*:
    a run interrupted at any moment resumes); no page calls it.
    """
    now = time.perf_counter()
    run.seconds += now - run.tic
    run.tic = now
    if run.rank != 0:
        return
    out = Path(run.settings["run_dir"])
    out.mkdir(parents=True, exist_ok=True)
    checkpoints.save({"settings": run.settings, "model": run.net.state_dict(),
                      "optimizer": run.opt.state_dict(), "aux_optimizer": run.aux_opt.state_dict(),
                      "rng": torch.get_rng_state(), "step": run.step, "seconds": run.seconds,
                      "history": run.history}, out / CHECKPOINT)
    checkpoints.save(_manifest(run), out / MANIFEST)


def finish(run: Run) -> TrainResult:
    """The trained model on the CPU, in float32 and eval mode, entropy coders updated, with the
    history and the manifest; under torchrun, once every rank is done.

    Used by :func:`train` (book section *Your first learned codec → Training*); no page calls it.
    """
    if run.world > 1:
        dist.barrier()
    net = run.net
    if run.settings["amp"]:  # the returned model runs in float32, as a loaded one does
        net = codecs.create(run.settings["model"], run.settings["N"], run.settings["M"])
        net.load_state_dict(run.net.state_dict())
    net = net.cpu().eval()
    net.update(force=True)  # on the CPU: the tables (and fingerprint) a loaded model gets
    return TrainResult(net, run.history, _manifest(run))


# --------------------------------------------------------------------------- helpers

IDENTITY_KEYS = ("model", "quality", "N", "M", "patch_size", "batch_size", "seed", "train_split",
                 "init_from", "metric")
#: What a run stored before a setting existed had: its value then.
_BEFORE = {"metric": "mse"}
#: The smallest patch MS-SSIM can be computed on (pytorch-msssim: 5 scales of an 11-pixel window).
MS_SSIM_MIN_PATCH = 161


def _init_distributed(device: str | None) -> tuple[torch.device, int, int]:
    """This process's device, rank and world size; under torchrun (``WORLD_SIZE`` > 1) the
    process group is started (NCCL on CUDA, else gloo) and each rank takes its own GPU."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return config.device(device), 0, 1
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    dev = config.device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
        torch.cuda.set_device(dev)
    return dev, rank, world


def _loader(run: Run) -> torch.utils.data.DataLoader:
    """The batches of the steps still to do, ``run.step`` to ``steps``. Step s of rank r uses
    the crops [(s·world + r)·B, … + B) of a dataset seeded per index: a resumed run continues
    exactly, and the ranks never share a crop."""
    s, bs, world = run.settings, run.settings["batch_size"], run.world
    dataset = data.PatchDataset(data.bsds500(s["train_split"]), s["patch_size"],
                                epoch_size=s["steps"] * bs * world, seed=s["seed"])
    first = [(step * world + run.rank) * bs for step in range(run.step, s["steps"])]
    indices = [i for f in first for i in range(f, f + bs)]
    workers = run.profile.num_workers
    return torch.utils.data.DataLoader(
        torch.utils.data.Subset(dataset, indices), batch_size=bs, shuffle=False,
        generator=torch.Generator().manual_seed(s["seed"]),  # keeps the global RNG untouched
        num_workers=workers if run.device.type == "cuda" else min(workers, 1),
        persistent_workers=False)


def _split_parameters(model: torch.nn.Module):
    main = [p for n, p in model.named_parameters() if not n.endswith(".quantiles")]
    aux = [p for n, p in model.named_parameters() if n.endswith(".quantiles")]
    return main, aux


def _manifest(run: Run) -> dict:
    settings, last = run.settings, run.history[-1] if run.history else {}
    return {
        "nctutor_version": __version__,
        "torch_version": torch.__version__,
        "machine": config.machine_info(),
        "settings": settings,
        "data": {"train": f"bsds500/{settings['train_split']}",
                 "count": len(data.files(f"bsds500/{settings['train_split']}"))},
        "steps": run.step,
        "seconds": round(run.seconds, 1),
        "final": {k: v for k, v in last.items() if k != "step"},
    }


# --------------------------------------------------------------------------- also used elsewhere


def run_dir(cfg: TrainConfig) -> Path:
    """Where a run keeps its checkpoint: ``out_dir``, else ``<cache>/runs/<model>-q<Q>-<profile>``
    (``<model>-ms-ssim-q<Q>-<profile>`` for an MS-SSIM-trained one).

    Used by the chapter *How to run this book → Training from the command line* (where a run
    resumes) and by :func:`nctutor.zoo.load`.
    """
    if cfg.out_dir:
        return Path(cfg.out_dir)
    profile = config.get_profile(cfg.profile).name
    metric = "" if cfg.metric == "mse" else f"-{cfg.metric}"
    name = f"{codecs.canonical_name(cfg.model)}{metric}-q{cfg.quality}-{profile}"
    return config.cache_dir() / "runs" / name


def float_psnr(mse: float) -> float:
    """PSNR in dB of a mean squared error between *float* ``[0, 1]`` images: ``-10·log10(mse)``.

    The training history's ``psnr``, computed on the float MSE of the loss (not the 8-bit PSNR of
    a decoded image, :func:`nctutor.rd.psnr`), plotted in book section *Your first learned codec →
    Training*.
    """
    return 10 * math.log10(1.0 / max(mse, 1e-12))


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
    the same with and without it. Used by :func:`setup` when ``amp`` is on (the ``gpu``
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
