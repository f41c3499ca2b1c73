"""Reports of an evaluation or an experiment: one self-contained HTML file, or Markdown.

A report holds what a reader needs to trust the comparison without the app: the
frozen judge panel (judges, their rubric versions, the combination rule), the test
set's size per split and kind, the decoding setting, the checkpoints, the comparison
tables (:mod:`reset_core.evaluation.compare`: one per aspect, kind and split), the
IFEval and K-Precision tables, and the instruction/faithfulness plane. The statistics
used are stated in it.

The HTML file embeds plotly.js itself (``include_plotlyjs=True``: the library inlined,
once, before the first chart), so it opens offline and loads nothing from the network.
The Markdown report has the same tables (charts are HTML-only).

An experiment report (``experiment_id``) wraps the report of each evaluation the
experiment made with its recipe and the state of its steps.
"""

from __future__ import annotations

import html
import json
from datetime import datetime
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from reset_core.aspects import ASPECTS
from reset_core.atomic import atomic_path
from reset_core.evaluation import charts
from reset_core.evaluation.compare import Comparison, compare, evaluation_info
from reset_core.store import one


class ReportOptions(BaseModel):
    """How a report is written (the flags of ``reset-studio report``, the page's help)."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["html", "md"] = Field(
        "html",
        description="html: one self-contained page with the charts (plotly inlined, opens "
        "offline); md: the same tables as Markdown.",
    )
    baseline: str | None = Field(
        None,
        description="The checkpoint deltas are taken against; empty = the evaluation's own.",
    )
    n_boot: int = Field(
        2000, ge=0, le=100_000, description="Bootstrap resamples per confidence interval."
    )
    seed: int = Field(0, ge=0, description="Seed of the bootstrap (same seed, same intervals).")


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 1100px; color: #222; line-height: 1.45; padding: 0 1rem; }
h1 { font-size: 1.6rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
h3 { margin-top: 1.4rem; font-size: 1.05rem; }
table { border-collapse: collapse; margin: 0.6rem 0 1rem; font-size: 0.88rem; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.55rem; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
.meta { color: #555; font-size: 0.9rem; } .method { background: #f8f8f8; padding: 0.6rem;
       border-left: 3px solid #999; font-size: 0.9rem; }
pre { background: #f8f8f8; padding: 0.6rem; overflow-x: auto; font-size: 0.85rem; }
"""


# ----------------------------------------------------------------------------- content


def _checkpoints_frame(info: dict, baseline: str) -> pd.DataFrame:
    """The compared checkpoints, in order, with the baseline marked (HTML and Markdown)."""
    return pd.DataFrame(
        [
            {
                "checkpoint": info["labels"][m],
                "model id": m,
                "role": "baseline" if m == baseline else "",
            }
            for m in info["checkpoints"]
        ]
    )


def _num(v, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "–"
    return f"{v:.{digits}f}"


def _signed(v) -> str:
    return "–" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:+.3f}"


def _ci(lo, hi) -> str:
    if any(x is None or (isinstance(x, float) and np.isnan(x)) for x in (lo, hi)):
        return "–"
    return f"[{lo:.3f}, {hi:.3f}]"


def _p(v) -> str:
    return "–" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.3g}"


def aspect_tables(c: Comparison) -> list[tuple[str, pd.DataFrame]]:
    """(title, readable table) per (aspect, kind, split), rows = checkpoints."""
    out = []
    t = c.table
    for aspect in ASPECTS:
        for (kind, split), g in t[t.aspect == aspect].groupby(["kind", "split"], sort=True):
            rows = [
                {
                    "checkpoint": r.label + (" (baseline)" if r.is_baseline else ""),
                    "n": r.n,
                    "missing": r.n_missing,
                    "mean": _num(r["mean"]),
                    "95% CI": _ci(r.mean_ci_low, r.mean_ci_high),
                    "pairs": "–" if r.is_baseline else r.n_pairs,
                    "delta": _signed(r.delta),
                    "delta 95% CI": _ci(r.ci_low, r.ci_high),
                    "p": _p(r.p_value),
                    "test": "" if r.is_baseline else r.test,
                }
                for _, r in g.iterrows()
            ]
            out.append((f"{aspect} · {kind} examples · {split}", pd.DataFrame(rows)))
    return out


def ifeval_table(c: Comparison) -> pd.DataFrame:
    """IFEval's four measures per checkpoint, with CIs and deltas (empty: no IFEval)."""
    rows = []
    for _model_id, g in c.ifeval.groupby("model_id", sort=False):
        first = g.iloc[0]
        row = {"checkpoint": first.label + (" (baseline)" if first.is_baseline else "")}
        for _, r in g.iterrows():
            cell = f"{_num(r.value)} {_ci(r.ci_low, r.ci_high)}"
            if not r.is_baseline:
                cell += f", Δ {_signed(r.delta)} {_ci(r.delta_ci_low, r.delta_ci_high)}"
            row[r.measure_text] = cell
        row["prompts scored"] = first.n_prompts
        row["unscored"] = first.n_unscored
        row["why unscored"] = "; ".join(f"{k}: {v}" for k, v in first.unscored_reasons.items())
        rows.append(row)
    return pd.DataFrame(rows)


def kprecision_table(c: Comparison) -> pd.DataFrame:
    rows = [
        {
            "checkpoint": r.label + (" (baseline)" if r.is_baseline else ""),
            "split": r.split,
            "n": r.n,
            "missing": r.n_missing,
            "K-Precision": _num(r["mean"]),
            "95% CI": _ci(r.mean_ci_low, r.mean_ci_high),
            "delta": _signed(r.delta),
            "delta 95% CI": _ci(r.ci_low, r.ci_high),
            "p": _p(r.p_value),
        }
        for _, r in c.kprecision.iterrows()
    ]
    return pd.DataFrame(rows)


def plane_table(c: Comparison) -> pd.DataFrame:
    rows = [
        {
            "checkpoint": r.label + (" (baseline)" if r.is_baseline else ""),
            "instruction": _num(r.instruction),
            "instruction 95% CI": _ci(r.instruction_ci_low, r.instruction_ci_high),
            "n instr.": r.n_instruction,
            "faithfulness": _num(r.faithfulness),
            "faithfulness 95% CI": _ci(r.faithfulness_ci_low, r.faithfulness_ci_high),
            "n faith.": r.n_faithfulness,
            "Δ instruction": _signed(r.delta_instruction),
            "Δ faithfulness": _signed(r.delta_faithfulness),
        }
        for _, r in c.plane.iterrows()
    ]
    return pd.DataFrame(rows)


def panel_table(con, frozen: dict) -> pd.DataFrame:
    """The frozen panel: per aspect, each judge, its kind and rubric version."""
    specs = frozen.get("specs") or {}
    names = dict(
        con.execute(
            "SELECT judge_id, name FROM judges WHERE list_contains(?, judge_id)",
            [sorted(specs) or [""]],
        ).fetchall()
    )
    rows = []
    for aspect in ASPECTS:
        for jid in (frozen.get("judges") or {}).get(aspect, []):
            spec = specs.get(jid) or {}
            rubric = (spec.get("rubrics") or {}).get(aspect) or {}
            if spec.get("type") == "metric":
                version = f"metric {spec.get('name', jid)}, {jid.rsplit(':', 1)[-1]}"
            elif rubric:
                version = f"rubric {aspect} v{rubric.get('version', '?')}"
            else:
                version = "–"
            rows.append(
                {
                    "aspect": aspect,
                    "judge": jid,
                    "name": names.get(jid, spec.get("name", "")),
                    "kind": spec.get("type", "?"),
                    "model": (spec.get("config") or {}).get("model", ""),
                    "rubric / version": version,
                }
            )
    return pd.DataFrame(rows)


def split_kind_sizes(con, evaluation_id: str) -> pd.DataFrame:
    """How many test examples the evaluation has, per split and kind (and source)."""
    return con.execute(
        """
        SELECT e.split, e.kind, count(*) AS examples,
               string_agg(DISTINCT e.source, ', ' ORDER BY e.source) AS sources
        FROM evaluation_examples ee JOIN examples e USING (example_id)
        WHERE ee.evaluation_id = ? GROUP BY ALL ORDER BY e.split, e.kind
        """,
        [evaluation_id],
    ).df()


def decoding_text(frozen: dict) -> str:
    """The frozen decoding setting as people read it, with every field."""
    from reset_core.sampling.settings import setting_label

    d = frozen.get("decoding") or {}
    fields = ", ".join(
        f"{k}={d[k]}"
        for k in ("temperature", "top_k", "top_p", "max_tokens", "seed", "n")
        if k in d
    )
    if "temperature" not in d or "top_k" not in d:
        return fields or "not recorded"
    label = setting_label(d["temperature"], d["top_k"], d.get("top_p", 1.0), d.get("n", 1))
    greedy = "greedy, " if d["temperature"] == 0 else ""
    return f"{greedy}{label} ({fields})"


def _experiment(con, experiment_id: str) -> dict:
    row = one(
        con,
        "SELECT name, recipe, state, status, error, created_at, finished_at FROM experiments "
        "WHERE experiment_id = ?",
        [experiment_id],
    )
    if row is None:
        raise ValueError(f"experiment_id: no experiment {experiment_id!r}")
    name, recipe, state, status, error, created, finished = row
    recipe = json.loads(recipe) if isinstance(recipe, str) else (recipe or {})
    state = json.loads(state) if isinstance(state, str) else (state or {})
    # The evaluations it made: those recorded against it, and any its state names.
    ids = [
        r[0]
        for r in con.execute(
            "SELECT evaluation_id FROM evaluations WHERE experiment_id = ? "
            "ORDER BY created_at, evaluation_id",
            [experiment_id],
        ).fetchall()
    ]
    for eid in _ids_in(state):
        if eid not in ids and one(con, "SELECT 1 FROM evaluations WHERE evaluation_id = ?", [eid]):
            ids.append(eid)
    return {
        "experiment_id": experiment_id,
        "name": name,
        "recipe": recipe,
        "state": state,
        "status": status,
        "error": error,
        "created_at": created,
        "finished_at": finished,
        "evaluation_ids": ids,
    }


def _ids_in(obj) -> list[str]:
    """Every evaluation id named in an experiment's state (any depth)."""
    found = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in ("evaluation_id", "evaluation_ids"):
                found += [v] if isinstance(v, str) else [x for x in v or [] if isinstance(x, str)]
            else:
                found += _ids_in(v)
    elif isinstance(obj, list):
        for v in obj:
            found += _ids_in(v)
    return found


def _steps_table(state: dict) -> pd.DataFrame:
    """One row per step: ``state["steps"]`` (step name -> {status, job_id, outputs})."""
    steps = state.get("steps") if isinstance(state.get("steps"), dict) else state
    rows = []
    for step, s in steps.items():
        s = s if isinstance(s, dict) else {"status": s}
        outputs = s.get("outputs")
        rows.append(
            {
                "step": step,
                "status": s.get("status", ""),
                "job": s.get("job_id") or "",
                "outputs": json.dumps(outputs, sort_keys=True) if outputs else "",
            }
        )
    return pd.DataFrame(rows)


def _targets(con, evaluation_id, experiment_id) -> tuple[dict | None, list[str]]:
    if evaluation_id is None and experiment_id is None:
        raise ValueError("evaluation_id or experiment_id: give at least one")
    exp = _experiment(con, experiment_id) if experiment_id else None
    ids = [evaluation_id] if evaluation_id else exp["evaluation_ids"]
    return exp, ids


# ----------------------------------------------------------------------------- HTML


def _h(text) -> str:
    return html.escape(str(text))


def _table_html(df: pd.DataFrame) -> str:
    if df.empty:
        return "<p class='meta'>(none)</p>"
    return df.to_html(index=False, escape=True, border=0, na_rep="–")


class _Figures:
    """Plotly figures as HTML divs; plotly.js is inlined once, before the first."""

    def __init__(self):
        self.first = True

    def __call__(self, fig) -> str:
        out = fig.to_html(
            full_html=False,
            include_plotlyjs=self.first,  # True = the whole library inlined, no CDN
            config={"displaylogo": False, "responsive": True},
            default_height="480px",
        )
        self.first = False
        return out


def _evaluation_html(con, c: Comparison, info: dict, fig: _Figures, level: int = 2) -> str:
    h, hh = f"h{level}", f"h{level + 1}"
    frozen = info["frozen"]
    panel = frozen.get("panel") or {}
    rule = ""
    if panel:
        rule = f"scale {panel.get('scale', 'linear')}, combined by {panel.get('combine', 'mean')}"
    parts = [
        f"<{h}>Evaluation {_h(info['name'])}</{h}>",
        f"<p class='meta'>{_h(info['evaluation_id'])} · status {_h(info['status'])} · "
        f"created {_h(info['created_at'])}"
        + (f" · finished {_h(info['finished_at'])}" if info["finished_at"] else "")
        + "</p>",
        f"<{hh}>Checkpoints</{hh}>",
        _table_html(_checkpoints_frame(info, c.baseline)),
        f"<{hh}>Test set</{hh}>",
        _table_html(split_kind_sizes(con, info["evaluation_id"])),
        f"<p>Decoding (one setting for every checkpoint): {_h(decoding_text(frozen))}</p>",
        f"<{hh}>Judge panel (frozen when the evaluation was created)</{hh}>",
        f"<p class='meta'>Panel {_h(panel.get('name', ''))}"
        + (f": {_h(rule)}" if rule else "")
        + ". Per answer and aspect the score is the mean of these judges' valid [0, 1] "
        "scores.</p>",
        _table_html(panel_table(con, frozen)),
        f"<{hh}>Instruction / faithfulness plane</{hh}>",
        fig(charts.plane_figure(c)),
        _table_html(plane_table(c)),
    ]
    if not c.ifeval.empty:
        parts += [f"<{hh}>IFEval</{hh}>", _table_html(ifeval_table(c))]
    if not c.kprecision.empty:
        parts += [
            f"<{hh}>K-Precision (context examples)</{hh}>",
            _table_html(kprecision_table(c)),
        ]
    parts.append(f"<{hh}>Comparison per aspect, kind and split</{hh}>")
    for aspect in ASPECTS:
        if (c.table.aspect == aspect).any() and (~c.table.is_baseline.astype(bool)).any():
            parts.append(fig(charts.delta_figure(c, aspect)))
        for title, table in aspect_tables(c):
            if title.startswith(f"{aspect} ·"):
                parts += [f"<h{level + 2}>{_h(title)}</h{level + 2}>", _table_html(table)]
    parts.append(f"<p class='method'>{_h(c.method)}</p>")
    return "\n".join(parts)


def report_html(
    con,
    evaluation_id: str | None = None,
    experiment_id: str | None = None,
    *,
    baseline: str | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> str:
    """One self-contained HTML page reporting an evaluation (or an experiment's).

    Plotly.js is inlined, so the file opens offline. Raises ``ValueError`` naming the
    id when the evaluation or experiment does not exist.
    """
    exp, ids = _targets(con, evaluation_id, experiment_id)
    fig = _Figures()
    body = []
    if exp:
        title = f"Experiment {exp['name']}"
        body += [
            f"<h1>{_h(title)}</h1>",
            f"<p class='meta'>{_h(exp['experiment_id'])} · status {_h(exp['status'])} · "
            f"created {_h(exp['created_at'])}</p>",
        ]
        if exp["error"]:
            body.append(f"<p><b>Error:</b> {_h(exp['error'])}</p>")
        if exp["recipe"].get("description"):
            body.append(f"<p>{_h(exp['recipe']['description'])}</p>")
        body += [
            "<h2>Recipe</h2>",
            f"<pre>{_h(json.dumps(exp['recipe'], indent=2, sort_keys=True))}</pre>",
            "<h2>Steps</h2>",
            _table_html(_steps_table(exp["state"])),
        ]
        if not ids:
            body.append("<p>This experiment has not made an evaluation yet.</p>")
    else:
        title = f"Evaluation {evaluation_info(con, ids[0])['name']}"
    for eid in ids:
        info = evaluation_info(con, eid)
        c = compare(con, eid, baseline=baseline, n_boot=n_boot, seed=seed)
        # An evaluation's own report is the page (h1); an experiment's holds sections.
        body.append(_evaluation_html(con, c, info, fig, level=2 if exp else 1))
    body.append(
        f"<p class='meta'>Written by RESET Studio on "
        f"{datetime.now().isoformat(timespec='seconds')}.</p>"
    )
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_h(title)}</title><style>{_CSS}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


# ----------------------------------------------------------------------------- Markdown


def _md(df: pd.DataFrame) -> str:
    return "(none)" if df.empty else df.to_markdown(index=False, disable_numparse=True)


def _evaluation_md(con, c: Comparison, info: dict, level: int = 2) -> str:
    h, hh = "#" * level, "#" * (level + 1)
    frozen = info["frozen"]
    panel = frozen.get("panel") or {}
    parts = [
        f"{h} Evaluation {info['name']}",
        f"`{info['evaluation_id']}` · status {info['status']} · created {info['created_at']}",
        f"{hh} Checkpoints",
        _md(_checkpoints_frame(info, c.baseline)),
        f"{hh} Test set",
        _md(split_kind_sizes(con, info["evaluation_id"])),
        f"Decoding (one setting for every checkpoint): {decoding_text(frozen)}",
        f"{hh} Judge panel (frozen)",
        f"Panel {panel.get('name', '')}; per answer and aspect the score is the mean of "
        "these judges' valid [0, 1] scores.",
        _md(panel_table(con, frozen)),
        f"{hh} Instruction / faithfulness plane",
        _md(plane_table(c)),
    ]
    if not c.ifeval.empty:
        parts += [f"{hh} IFEval", _md(ifeval_table(c))]
    if not c.kprecision.empty:
        parts += [f"{hh} K-Precision (context examples)", _md(kprecision_table(c))]
    parts.append(f"{hh} Comparison per aspect, kind and split")
    for title, table in aspect_tables(c):
        parts += [f"{'#' * (level + 2)} {title}", _md(table)]
    parts.append(f"*{c.method}*")
    return "\n\n".join(parts)


def report_markdown(
    con,
    evaluation_id: str | None = None,
    experiment_id: str | None = None,
    *,
    baseline: str | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> str:
    """The same report as :func:`report_html` as Markdown tables (no charts)."""
    exp, ids = _targets(con, evaluation_id, experiment_id)
    parts = []
    if exp:
        parts += [
            f"# Experiment {exp['name']}",
            f"`{exp['experiment_id']}` · status {exp['status']} · created {exp['created_at']}",
        ]
        if exp["error"]:
            parts.append(f"**Error:** {exp['error']}")
        if exp["recipe"].get("description"):
            parts.append(exp["recipe"]["description"])
        parts += [
            "## Recipe",
            "```json\n" + json.dumps(exp["recipe"], indent=2, sort_keys=True) + "\n```",
            "## Steps",
            _md(_steps_table(exp["state"])),
        ]
        if not ids:
            parts.append("This experiment has not made an evaluation yet.")
    for eid in ids:
        info = evaluation_info(con, eid)
        c = compare(con, eid, baseline=baseline, n_boot=n_boot, seed=seed)
        parts.append(_evaluation_md(con, c, info, level=2 if exp else 1))
    return "\n\n".join(parts) + "\n"


def write_report(
    con,
    path,
    evaluation_id: str | None = None,
    experiment_id: str | None = None,
    options: ReportOptions | None = None,
    *,
    force: bool = False,
):
    """Write the report to ``path`` (atomically); return the path.

    Refuses to replace an existing file unless ``force``: ``FileExistsError`` naming it.
    """
    from pathlib import Path

    o = options or ReportOptions()
    path = Path(path)
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; not overwritten (use --force to replace it)")
    write = report_html if o.format == "html" else report_markdown
    text = write(
        con,
        evaluation_id,
        experiment_id,
        baseline=o.baseline,
        n_boot=o.n_boot,
        seed=o.seed,
    )
    with atomic_path(path, overwrite=force) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path
