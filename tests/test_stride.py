"""One stride rule everywhere (:func:`nctutor.codecs.pad` / :func:`nctutor.codecs.crop`):
``nctutor eval`` reports exactly the bits that ``nctutor compress`` writes, for Kodak images and
for an image whose size is not a multiple of the stride (book section *Transform coding with
learned priors → Real bitstreams* and *Evaluation*)."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from nctutor import cli, codecs, container, data, rd, zoo

MODEL, QUALITY = "mbt2018-mean", 1  # the fastest shipped model: about 1 s a Kodak image


@pytest.fixture
def shipped_profile(monkeypatch):
    """The command line's default, as a user gets it: the shipped weights."""
    monkeypatch.delenv("NCTUTOR_PROFILE", raising=False)
    return zoo.shipped()[(MODEL, QUALITY)]["profile"]


def test_pad_replicates_bottom_right_and_crop_undoes_it():
    x = torch.rand(1, 3, 190, 250)
    xp = codecs.pad(x, 64)
    assert xp.shape[-2:] == (192, 256)
    assert torch.equal(xp[..., :190, :250], x)
    assert torch.equal(xp[..., 190:, :250], x[..., 189:, :].expand(-1, -1, 2, -1))
    assert torch.equal(xp[..., :, 250:], xp[..., :, 249:250].expand(-1, -1, -1, 6))
    assert torch.equal(codecs.crop(xp, 190, 250), x)
    assert torch.equal(codecs.pad(x[..., :128, :192], 64), x[..., :128, :192])


def test_eval_bpp_is_the_compressed_files_bpp_on_kodak(tmp_path, shipped_profile):
    kodak = data.kodak(3)
    bpp = []
    for i, rel in enumerate(kodak.rels):
        nct = tmp_path / f"{kodak.names[i]}.nct"
        assert cli.main(["compress", str(data.path(rel)), str(nct), "--model", MODEL,
                         "--quality", str(QUALITY)]) == 0
        assert container.read_header(nct.read_bytes()).profile == shipped_profile
        h, w = kodak[i].shape[-2:]
        bpp.append(8 * nct.stat().st_size / (h * w))
    out = tmp_path / "eval.json"
    assert cli.main(["eval", "--model", MODEL, "--quality", str(QUALITY), "--images", "3",
                     "--crop", "0", "--json", str(out)]) == 0
    results = json.loads(out.read_text())["results"]
    assert results["bpp"] == [pytest.approx(float(np.mean(bpp)), rel=1e-12)]


def test_an_image_off_the_stride_gives_the_same_file_both_ways(tmp_path, shipped_profile):
    """A 250×190 crop (neither side a multiple of 64): ``evaluate_model`` counts the bytes of
    the file ``nctutor compress`` writes, and measures the PSNR of what ``nctutor decompress``
    writes."""
    x = data.kodak(1)[0][:, 100:290, 200:450]
    src, nct, png = tmp_path / "crop.png", tmp_path / "crop.nct", tmp_path / "crop.out.png"
    data.save_image(x, src)
    assert cli.main(["compress", str(src), str(nct), "--model", MODEL,
                     "--quality", str(QUALITY)]) == 0
    assert cli.main(["decompress", str(nct), str(png)]) == 0
    model = zoo.load(MODEL, QUALITY, profile=shipped_profile)
    rec = rd.evaluate_model(model, [data.load_image(src)], name=MODEL).records[0]
    blob = nct.read_bytes()
    header = container.read_header(blob)
    assert (header.height, header.width) == (190, 250)
    assert rec["bytes"] == len(blob) and rec["stream_bytes"] == header.payload_size
    assert rec["bpp"] == 8 * len(blob) / (190 * 250)
    decoded = torch.from_numpy(np.array(Image.open(png))).permute(2, 0, 1)
    assert rec["psnr"] == pytest.approx(rd.psnr(data.to_uint8(x), decoded),
                                        abs=rd.PSNR_TOLERANCE_DB)
