"""The graded assignments of assignments/: otter-grader masters that build and grade right.

Each master (``otter assign`` format) is built into ``tmp_path`` (never into the repository),
then three notebooks are graded locally, without docker, by ``otter.api.grade_submission``
in debug mode (a cell that raises fails the grading): the solution notebook gets full marks,
the blank student notebook runs and gets zero, and the solution with one wrong answer loses
exactly the point of the question that should catch it. Book page *For instructors*.
"""

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

otter_api = pytest.importorskip("otter.api")

ROOT = Path(__file__).resolve().parents[1]
MASTERS = ROOT / "assignments"
NAMES = ["01_foundations", "02_deltasigma", "03_conditional", "04_lattice"]

# One plausible mistake per assignment: (question it must fail, solution text, wrong text).
WRONG = {
    # the rate in bytes (not bits) per pixel
    "01_foundations": ("q3", "bpp, psnr = curve.bpp[0], curve.psnr[0]",
                       "bpp, psnr = curve.bpp[0] / 8, curve.psnr[0]"),
    # no integrator: y[i] = c[i] - b[i-1]
    "02_deltasigma": ("q2", "y = y_prev + c[i] - b_prev", "y = c[i] - b_prev"),
    # the variance of x instead of that of the residual x - x~
    "03_conditional": ("q1", "var_residual = (a - 1) ** 2 * sigma**2 + sigma_n**2",
                       "var_residual = a**2 * sigma**2 + sigma_n**2"),
    # the MSE per point instead of per dimension
    "04_lattice": ("q3", ".sum(dim=1).mean() / 2)", ".sum(dim=1).mean())"),
}
QUESTIONS = ["q1", "q2", "q3"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """``otter assign`` of each master, on first use: ``{name: result folder}``."""
    cache: dict[str, Path] = {}

    def build(name: str) -> Path:
        if name not in cache:
            out = tmp_path_factory.mktemp(name) / "dist"
            subprocess.run([sys.executable, "-m", "otter", "assign", "--no-pdfs",
                            str(MASTERS / f"{name}.ipynb"), str(out)],
                           check=True, capture_output=True, text=True)
            cache[name] = out
        return cache[name]

    return build


def _grade(notebook: Path, out: Path) -> dict[str, float]:
    """Score per question of ``notebook``, graded locally by the autograder zip in ``out``."""
    zip_file, = (out / "autograder").glob("*.zip")
    results = otter_api.grade_submission(str(notebook), str(zip_file), quiet=True, debug=True)
    assert results.possible == len(QUESTIONS)
    return {q: results.results[q].score for q in QUESTIONS}


def test_masters_have_the_otter_structure():
    """Every master opens with its config and holds three questions, each with a solution
    block and one test cell (so one test per question)."""
    assert sorted(p.stem for p in MASTERS.glob("*.ipynb")) == NAMES
    for name in NAMES:
        nb = nbformat.read(MASTERS / f"{name}.ipynb", as_version=4)
        raws = [c.source.splitlines()[0] for c in nb.cells if c.cell_type == "raw"]
        assert nb.cells[0].source.startswith(f"# ASSIGNMENT CONFIG\nname: {name}\n")
        assert raws[1:] == ["# BEGIN QUESTION", "# BEGIN SOLUTION", "# END SOLUTION",
                            "# BEGIN TESTS", "# END TESTS", "# END QUESTION"] * 3, name
        question, wrong_from, _ = WRONG[name]
        assert sum(wrong_from in c.source for c in nb.cells) == 1, name


@pytest.mark.parametrize("name", NAMES)
def test_assign_builds_student_and_autograder(built, name):
    out = built(name)
    student = nbformat.read(out / "student" / f"{name}.ipynb", as_version=4)
    text = "\n".join(c.source for c in student.cells)
    assert "SOLUTION" not in text and "assert" not in text  # no solutions, no tests
    assert WRONG[name][1] not in text
    checks = [c.source for c in student.cells if c.source.startswith("grader.check(")]
    assert checks == [f'grader.check("{q}")' for q in QUESTIONS]
    config = json.loads((out / "autograder" / "otter_config.json").read_text())
    assert config.get("name", name) == name


@pytest.mark.parametrize("name", NAMES)
def test_solution_gets_full_marks(built, name):
    out = built(name)
    assert _grade(out / "autograder" / f"{name}.ipynb", out) == dict.fromkeys(QUESTIONS, 1.0)


@pytest.mark.parametrize("name", NAMES)
def test_blank_student_notebook_runs_and_gets_zero(built, name):
    out = built(name)
    assert _grade(out / "student" / f"{name}.ipynb", out) == dict.fromkeys(QUESTIONS, 0.0)


@pytest.mark.parametrize("name", NAMES)
def test_one_wrong_answer_fails_exactly_its_test(built, name, tmp_path):
    out = built(name)
    question, right, wrong = WRONG[name]
    nb = nbformat.read(out / "autograder" / f"{name}.ipynb", as_version=4)
    hits = [c for c in nb.cells if right in c.source]
    assert len(hits) == 1
    hits[0].source = hits[0].source.replace(right, wrong)
    submission = tmp_path / f"{name}.ipynb"  # the name otter.Notebook(...) expects
    nbformat.write(nb, submission)
    expected = {q: 0.0 if q == question else 1.0 for q in QUESTIONS}
    assert _grade(submission, out) == expected
