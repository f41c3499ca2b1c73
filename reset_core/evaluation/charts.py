"""Plotly figures of a comparison: the instruction/faithfulness plane and delta forests.

The same figures are drawn on the Evaluate page (``st.plotly_chart``) and embedded in
the HTML report, so they are built here once, from a :class:`Comparison` only (no
database access).

- :func:`plane_figure`: the paper's picture. Each checkpoint at (instruction score on
  instruction examples, faithfulness on context examples) with its 95% CIs as error
  bars; the baseline drawn apart, and an arrow from it to every other checkpoint, so
  "faithfulness up, instruction held" reads as an arrow pointing up.
- :func:`delta_figure`: one aspect's paired deltas against the baseline, one row per
  (kind, split, checkpoint), with CIs and the zero line (a forest plot).
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from reset_core.evaluation.compare import Comparison

BASELINE_COLOR = "#636363"
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2")


def _err(values, low, high) -> dict:
    """Asymmetric error bars from CI bounds (none drawn where a bound is NaN)."""
    v, lo, hi = (np.asarray(x, dtype=float) for x in (values, low, high))
    return {
        "type": "data",
        "symmetric": False,
        "array": np.nan_to_num(hi - v, nan=0.0),
        "arrayminus": np.nan_to_num(v - lo, nan=0.0),
        "thickness": 1.2,
    }


def plane_figure(comparison: Comparison) -> go.Figure:
    """Checkpoints on the instruction (x) / faithfulness (y) plane, with 95% CIs."""
    plane = comparison.plane
    fig = go.Figure()
    usable = plane.dropna(subset=["instruction", "faithfulness"])
    base = usable[usable.is_baseline]
    for i, (_, r) in enumerate(usable.iterrows()):
        color = BASELINE_COLOR if r.is_baseline else COLORS[i % len(COLORS)]
        fig.add_trace(
            go.Scatter(
                x=[r.instruction],
                y=[r.faithfulness],
                mode="markers+text",
                name=r.label + (" (baseline)" if r.is_baseline else ""),
                text=[r.label],
                textposition="top center",
                marker={
                    "size": 14,
                    "color": color,
                    "symbol": "diamond" if r.is_baseline else "circle",
                },
                error_x=_err([r.instruction], [r.instruction_ci_low], [r.instruction_ci_high])
                | {"color": color},
                error_y=_err([r.faithfulness], [r.faithfulness_ci_low], [r.faithfulness_ci_high])
                | {"color": color},
                customdata=[[r.model_id, r.n_instruction, r.n_faithfulness]],
                hovertemplate=(
                    f"<b>{r.label}</b><br>instruction %{{x:.3f}} (n=%{{customdata[1]}})"
                    "<br>faithfulness %{y:.3f} (n=%{customdata[2]})<extra></extra>"
                ),
            )
        )
        if not r.is_baseline and len(base):
            b = base.iloc[0]
            fig.add_annotation(
                x=r.instruction,
                y=r.faithfulness,
                ax=b.instruction,
                ay=b.faithfulness,
                xref="x",
                yref="y",
                axref="x",
                ayref="y",
                showarrow=True,
                arrowhead=3,
                arrowwidth=1.5,
                standoff=9,  # the head stops at the marker's edge, so it stays visible
                arrowcolor=color,
                opacity=0.6,
                text="",
            )
    fig.update_layout(
        title=f"{comparison.name}: checkpoints on the instruction / faithfulness plane",
        xaxis_title="instruction following (instruction examples)",
        yaxis_title="faithfulness (context examples)",
        legend_title="checkpoint",
        margin={"t": 60, "l": 60, "r": 20, "b": 60},
    )
    return fig


def delta_figure(comparison: Comparison, aspect: str) -> go.Figure:
    """Paired deltas against the baseline on ``aspect``, per (kind, split, checkpoint)."""
    from reset_core.aspects import check_aspect

    check_aspect(aspect)
    t = comparison.table
    t = t[(t.aspect == aspect) & ~t.is_baseline.astype(bool)]
    fig = go.Figure()
    rows = [f"{k} · {s}" for k, s in zip(t.kind, t.split, strict=True)]
    for i, (label, g) in enumerate(t.assign(row=rows).groupby("label", sort=False)):
        fig.add_trace(
            go.Scatter(
                x=g.delta,
                y=g.row,
                mode="markers",
                orientation="h",  # rows are categories on y: grouping offsets along y
                name=label,
                marker={"size": 11, "color": COLORS[(i + 1) % len(COLORS)]},
                error_x=_err(g.delta, g.ci_low, g.ci_high),
                customdata=np.stack([g.n_pairs, g.p_value.fillna(-1)], axis=-1),
                hovertemplate=(
                    f"<b>{label}</b> %{{y}}<br>delta %{{x:+.3f}} "
                    "(pairs %{customdata[0]}, p %{customdata[1]:.3g})<extra></extra>"
                ),
            )
        )
    base = comparison.labels.get(comparison.baseline, comparison.baseline)
    fig.add_vline(x=0, line_dash="dash", line_color=BASELINE_COLOR)
    fig.update_layout(
        title=f"{aspect}: paired delta against {base} (95% CI)",
        xaxis_title=f"mean paired delta vs {base}",
        yaxis_title="kind · split",
        scattermode="group",
        legend_title="checkpoint",
        margin={"t": 60, "l": 140, "r": 20, "b": 60},
    )
    return fig
