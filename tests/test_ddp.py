"""``nctutor train`` under torchrun: two CPU processes, gloo, DDP; the ranks stay identical."""

import json
import os
import subprocess
import sys
import textwrap

import torch

from nctutor import checkpoints, train

# Each rank runs the real command line (nctutor.cli.main) and, after it, saves the parameters it
# ended with, so that the test can compare the two ranks' models bit for bit.
SCRIPT = textwrap.dedent("""
    import os, sys, torch
    import nctutor.train
    from nctutor import cli
    results = []
    real_train = nctutor.train.train
    def recording_train(*args, **kwargs):
        results.append(real_train(*args, **kwargs))
        return results[-1]
    nctutor.train.train = recording_train
    out = sys.argv[1]
    code = cli.main(["train", "bmshj2018-factorized", "--quality", "1", "--profile", "smoke",
                     "--steps", "4", "--out", out, "--quiet"])
    torch.save(results[0].model.state_dict(), os.path.join(out, f"rank{os.environ['RANK']}.pt"))
    sys.exit(code)
""")


# Not marked slow: the DDP path (process group, all-reduced quantile gradients, each rank's own
# crops) is tested nowhere else. Two fresh interpreters import torch and train 4 steps: 6 s on 2
# idle cores, 15-30 s when other jobs share them.
def test_torchrun_two_processes_gloo(tmp_path):
    script, out = tmp_path / "ddp_train.py", tmp_path / "run"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(script), str(out)],
        capture_output=True, text=True, timeout=400, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("4 steps") == 1  # only rank 0 reports
    manifest = json.loads((out / checkpoints.MANIFEST).read_text())
    assert manifest["steps"] == 4 and len(manifest["settings"]) > 0
    assert all(torch.isfinite(torch.tensor(manifest["final"][k])) for k in ("loss", "bpp", "psnr"))
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys()
    assert all(torch.equal(ranks[0][k], ranks[1][k]) for k in ranks[0])
    ckpt = checkpoints.load_checkpoint(out / checkpoints.CHECKPOINT)
    assert ckpt["step"] == 4
    assert all(torch.equal(ckpt["model"][k], ranks[0][k]) for k in ckpt["model"]
               if not k.endswith(("_quantized_cdf", "_offset", "_cdf_length")))
    # the two ranks really trained on different crops: the run is not the 1-process run
    single = train.train(train.TrainConfig(model="bmshj2018-factorized", quality=1,
                                           profile="smoke", steps=4, out_dir=str(tmp_path / "1")),
                         progress=False)
    w = "g_a.0.weight"
    assert not torch.equal(single.model.state_dict()[w], ranks[0][w])
