"""Reports of an evaluation or an experiment (HTML and Markdown) and ``reset-studio report``."""

import re

import evaluation_data as ev
import pytest

from reset_core.cli import main
from reset_core.evaluation.charts import delta_figure, plane_figure
from reset_core.evaluation.compare import compare
from reset_core.evaluation.report import report_html, report_markdown, write_report
from reset_core.store import connect


@pytest.fixture
def filled(con):
    ev.fill_evaluation(con)
    return con


def test_html_report_is_self_contained_and_says_what_was_frozen(filled):
    page = report_html(filled, ev.EVAL_ID, n_boot=200)
    # plotly.js inlined exactly once; nothing fetched from anywhere
    assert page.count("plotly.js v") >= 1
    assert len(re.findall(r"<script[^>]*\bsrc=", page)) == 0
    assert not re.search(r"<link[^>]+href=['\"]?https?:", page)
    assert page.count('class="plotly-graph-div"') == 4  # the plane + a delta chart per aspect
    # the frozen panel with rubric versions, the test set, the decoding setting
    for text in (
        ev.ROUGE,
        ev.KP,
        ev.IFEVAL,
        "rubric task v2",
        "rubric faithfulness v1",
        "greedy, T 0 · top-k all",
        "max_tokens=256",
        "RESET round 1",
        "needs NLTK punkt data",
        "Wilcoxon signed-rank",
        "BCa, 200 resamples",
        "faithfulness · context examples · test_seen",
    ):
        assert text in page, text
    assert page.count("<h1>") == 1 and "<h1>Evaluation base vs MTL vs RESET</h1>" in page
    sizes = re.search(r"<h2>Test set</h2>\s*(<table.*?</table>)", page, re.S).group(1)
    assert sizes.count("<td>test_unseen</td>") == 2 and "<td>ifeval</td>" in sizes


def test_markdown_report_has_the_same_tables(filled):
    md = report_markdown(filled, ev.EVAL_ID, n_boot=200)
    assert md.startswith("# Evaluation base vs MTL vs RESET") and md.count("\n# ") == 0
    assert "### faithfulness · context examples · test_seen" in md
    # RESET on faithfulness/context/test_seen: 2 scored, 1 missing, delta +0.350
    line = next(
        ln
        for ln in md.split("\n### faithfulness · context examples · test_seen")[1].splitlines()
        if ln.startswith("| RESET round 1")
    )
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[1:4] == ["2", "1", "0.900"] and cells[6] == "+0.350"
    assert "\n## IFEval" in md and "\n## K-Precision (context examples)" in md
    assert "| base (baseline) |" in md
    assert "<script" not in md


def test_experiment_report_wraps_its_evaluation_with_the_recipe(filled):
    ev.add_experiment(filled, "exp-1", ev.EVAL_ID)
    page = report_html(filled, experiment_id="exp-1", n_boot=0)
    assert "<h1>Experiment mtl-tradeoff</h1>" in page
    assert "The MTL baseline against the base model." in page
    assert "<td>mtl.train</td>" in page and "job-1" in page and ev.EVAL_ID in page
    assert "<h2>Evaluation base vs MTL vs RESET</h2>" in page
    md = report_markdown(filled, experiment_id="exp-1", n_boot=0)
    assert md.startswith("# Experiment mtl-tradeoff") and "## Recipe" in md
    # an experiment recorded against its evaluations by id (evaluations.experiment_id)
    ev.add_evaluation(
        filled, "eval-2", experiment_id="exp-2", name="second arm", examples=["c1", "c2"]
    )
    filled.execute(
        "INSERT INTO experiments (experiment_id, name, recipe, state, status) "
        "VALUES ('exp-2', 'decoding-ablation', '{}', '{}', 'running')"
    )
    md = report_markdown(filled, experiment_id="exp-2", n_boot=0)
    assert "## Evaluation second arm" in md
    filled.execute(
        "INSERT INTO experiments (experiment_id, name, recipe, state, status) "
        "VALUES ('exp-3', 'weighting-ablation', '{}', '{}', 'running')"
    )
    assert "has not made an evaluation yet" in report_markdown(filled, experiment_id="exp-3")
    with pytest.raises(ValueError, match="experiment_id: no experiment 'exp-x'"):
        report_html(filled, experiment_id="exp-x")
    with pytest.raises(ValueError, match="give at least one"):
        report_html(filled)


def test_write_report_never_overwrites_unless_forced(filled, tmp_path):
    out = tmp_path / "r.md"
    out.write_text("mine")
    with pytest.raises(FileExistsError, match=re.escape(str(out))):
        write_report(filled, out, ev.EVAL_ID)
    assert out.read_text() == "mine"


def test_cli_report(db_path, tmp_path, capsys):
    con = connect(db_path)
    ev.fill_evaluation(con)
    ev.add_experiment(con, "exp-1", ev.EVAL_ID)
    con.close()
    html_out, md_out = tmp_path / "out" / "report.html", tmp_path / "report.md"
    args = ["--db", str(db_path), "report", ev.EVAL_ID, "--n-boot", "100"]
    assert main([*args, "--out", str(html_out)]) == 0
    assert f"wrote {html_out}" in capsys.readouterr().out
    assert html_out.read_text().startswith("<!DOCTYPE html>")
    # an existing file is refused, by name, unless --force
    assert main([*args, "--out", str(html_out), "--format", "md"]) == 1
    err = capsys.readouterr().err
    assert str(html_out) in err and "--force" in err
    assert html_out.read_text().startswith("<!DOCTYPE html>")
    assert main([*args, "--out", str(html_out), "--format", "md", "--force"]) == 0
    assert html_out.read_text().startswith("# Evaluation")
    assert main([*args, "--out", str(md_out), "--format", "md", "--baseline", "m:mtl"]) == 0
    assert "MTL (baseline)" in md_out.read_text()
    exp_out = tmp_path / "exp.md"
    cmd = ["--db", str(db_path), "report", "--experiment", "exp-1", "--format", "md"]
    assert main([*cmd, "--out", str(exp_out)]) == 0
    assert exp_out.read_text().startswith("# Experiment mtl-tradeoff")
    capsys.readouterr()
    assert main(["--db", str(db_path), "report", "eval-x", "--out", str(tmp_path / "x")]) == 2
    assert "no evaluation 'eval-x'" in capsys.readouterr().err
    assert main(["--db", str(db_path), "report", "--out", str(tmp_path / "x")]) == 2
    assert "--experiment" in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path / "y"), "--n-boot", "-1"]) == 2
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_charts_draw_the_comparisons_figures(filled):
    c = compare(filled, ev.EVAL_ID, n_boot=200)
    fig = plane_figure(c)
    assert [t.name for t in fig.data] == ["base (baseline)", "MTL", "RESET round 1"]
    p = c.plane.set_index("model_id")
    reset = fig.data[2]
    assert (reset.x[0], reset.y[0]) == (
        p.loc["m:reset", "instruction"],
        p.loc["m:reset", "faithfulness"],
    )
    # error bars reach the CI bounds
    assert reset.x[0] + reset.error_x.array[0] == pytest.approx(
        p.loc["m:reset", "instruction_ci_high"]
    )
    assert reset.y[0] - reset.error_y.arrayminus[0] == pytest.approx(
        p.loc["m:reset", "faithfulness_ci_low"]
    )
    assert fig.data[0].marker.symbol == "diamond"  # the baseline drawn apart
    assert len(fig.layout.annotations) == 2  # an arrow from the baseline to each other
    d = delta_figure(c, "faithfulness")
    assert [t.name for t in d.data] == ["MTL", "RESET round 1"]
    t = c.table[(c.table.aspect == "faithfulness") & (c.table.model_id == "m:reset")]
    assert list(d.data[1].x) == pytest.approx(list(t.delta))
    assert list(d.data[1].y) == [f"context · {s}" for s in t.split]
    # rows are categories on y: plotly's grouping must offset along y, not shift x
    assert all(t.orientation == "h" for t in d.data) and d.layout.scattermode == "group"
    with pytest.raises(ValueError, match="aspect"):
        delta_figure(c, "style")
