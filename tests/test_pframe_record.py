"""The P-frame coders' shipped weights and stored record: a fair experiment, consistent, and
re-measured on a sample (the chapter *Conditional coding in practice*)."""

import json
import math

import numpy as np
import pytest

from nctutor import pframetrain
from nctutor.checkpoints import WEIGHTS_DIR
from nctutor.codecs import conditional as cc
from nctutor.rd import conditional as rc

RECORD = WEIGHTS_DIR / "pframe-eval.json"
SHIPPED = ("pframe-diff-q2", "pframe-xgdc-q2")


@pytest.fixture(scope="module")
def record():
    return json.loads(RECORD.read_text())


def test_every_coder_was_trained_alike(record):
    qualities = record["qualities"]
    assert len(qualities) >= 4  # a Bjøntegaard delta needs four points
    assert set(record["runs"]) == {f"{n}-q{q}" for n in cc.CODERS for q in qualities}
    budgets = set()
    for run in record["runs"].values():
        s = run["settings"]
        assert run["steps"] == s["steps"] >= 500 and s["profile"] == "cpu"
        # one start per λ: the shipped image codec of the quality (q5, not shipped, from q4)
        assert s["init_from"].endswith(f"mbt2018-mean-q{min(s['quality'], 4)}.pt")
        assert run["history"][-1][0] == s["steps"]  # the history runs to the end
        budgets.add((s["steps"], s["seed"], s["N"], s["M"], s["patch_size"], s["batch_size"],
                     s["lr"], s["lr_drop"]))
    assert len(budgets) == 1  # same budget: only the coder differs
    assert sum(f.stat().st_size for f in WEIGHTS_DIR.glob("*.pt")) <= 60e6  # the house limit


def test_shipped_weights_are_the_recorded_runs(record):
    for key in SHIPPED:
        coder, man = pframetrain.load_weights(WEIGHTS_DIR / f"{key}.pt")
        assert man["sha256"] == record["runs"][key]["sha256"]
        assert man["settings"] == record["runs"][key]["settings"]
        assert cc.count_parameters(coder) == record["parameters"][man["model"]]


def test_the_record_is_consistent(record):
    n = len(record["pairs"])
    assert n == 24 and {p["clip"] for p in record["pairs"]} == {"BasketballPass",
                                                               "carphone_pristine"}
    for per_q in record["points"].values():
        assert len(per_q) == len(record["qualities"])
        for pts in per_q:
            assert len(pts) == n
            for p in pts:  # the rate is the whole file's, the cost its Lagrangian
                assert p["bpp"] == pytest.approx(8 * p["bytes"] / p["pixels"]
                                                 + ("choice" in p) / p["pixels"])
    for label, base in rc.HYBRIDS.items():  # a hybrid takes the cheaper file of each pair
        for qi in range(len(record["qualities"])):
            for i in range(n):
                h = record["points"][label][qi][i]
                d = record["points"]["DiffCoder"][qi][i]
                c = record["points"][base][qi][i]
                assert h["cost"] == pytest.approx(min(d["cost"], c["cost"]) + 1 / h["pixels"])
    xqt, xd, xg = (record["points"][k] for k in ("xGDC (QT)", "xGDC x̂_d", "xGDC x̂_g"))
    for qi in range(len(record["qualities"])):
        for i in range(n):  # the quad-tree never costs much more than the better signal: at
            # most its two bits per 256-pixel tile, a byte of rounding, and 8-bit rounding noise
            best = min(xd[qi][i]["cost"], xg[qi][i]["cost"])
            assert xqt[qi][i]["cost"] <= best * 1.001 + 16 / xqt[qi][i]["pixels"]
    rows = {r["variant"]: r for r in rc.table(record)}
    assert rows["xGDC (QT)"]["paper_bd_rate"] == -27.8
    for r in rows.values():
        assert r["bd_rate"] is None or math.isfinite(r["bd_rate"])


@pytest.mark.usefixtures("one_thread")
def test_a_sample_of_the_record_is_re_measured(record):
    pairs = pframetrain.pairs("test", "cpu")
    q = 2
    qi = record["qualities"].index(q)
    for i in (0, len(pairs) - 1):  # one pair of each test clip
        assert (pairs[i]["clip"], pairs[i]["frame"]) == (record["pairs"][i]["clip"],
                                                         record["pairs"][i]["frame"])
        assert rc.mutual_information(pairs[i]["xt"], pairs[i]["x"]) == pytest.approx(
            record["pairs"][i]["mi"])
        for label, key in (("DiffCoder", "pframe-diff-q2"), ("xGDC (QT)", "pframe-xgdc-q2")):
            coder, _ = pframetrain.load_weights(WEIGHTS_DIR / f"{key}.pt")
            point = rc.code_pair(coder, q, pairs[i], rc.VARIANTS[label][1])
            stored = record["points"][label][qi][i]
            assert point["bytes"] == pytest.approx(stored["bytes"], rel=0.01)
            assert point["psnr"] == pytest.approx(stored["psnr"], abs=0.05)
    assert np.isfinite([p["mi"] for p in record["pairs"]]).all()
