"""What a person sees on a page in AppTest: its text, widget labels and options, tables, charts.

Tooltips (``help``) and chart hover text are left out: that is where ids may live, one
hover away from the values people read.
"""

from __future__ import annotations

import json

TEXT_ELEMENTS = (
    "title",
    "header",
    "subheader",
    "markdown",
    "caption",
    "info",
    "success",
    "warning",
    "error",
)
WIDGETS = ("button", "checkbox", "toggle", "text_input", "number_input", "slider", "text_area")
CHOICES = ("selectbox", "multiselect", "radio")


def _chart_text(spec: str) -> list[str]:
    """Trace names, marker text, categorical axis values and titles of a Plotly figure."""
    fig = json.loads(spec)
    out = []
    for trace in fig.get("data", []):
        out.append(str(trace.get("name", "")))
        for key in ("text", "x", "y"):
            values = trace.get(key)
            if isinstance(values, list):
                out += [v for v in values if isinstance(v, str)]
            elif isinstance(values, str) and key == "text":
                out.append(values)
    layout = fig.get("layout", {})
    for part in (layout.get("title"), layout.get("legend", {}).get("title")):
        if isinstance(part, dict):
            out.append(str(part.get("text", "")))
    return out


def visible_texts(at) -> list[str]:
    """Every piece of text the page shows, one string per element, cell or option."""
    out: list[str] = []
    for kind in TEXT_ELEMENTS:
        out += [str(e.value) for e in getattr(at, kind)]
    for m in at.metric:
        out += [m.label, str(m.value)]
    for kind in WIDGETS:
        out += [str(w.label) for w in getattr(at, kind)]
    for kind in CHOICES:
        for w in getattr(at, kind):
            out += [str(w.label), *map(str, w.options)]
    out += [e.label for e in at.expander]
    for link in at.get("page_link"):
        out.append(link.proto.label)
    for df in at.dataframe:
        frame = df.value
        out += [str(c) for c in frame.columns]
        out += [str(v) for v in frame.astype(str).to_numpy().ravel()]
    for chart in at.get("plotly_chart"):
        out += _chart_text(chart.proto.spec)
    return out


def visible_text(at) -> str:
    """:func:`visible_texts` joined, Markdown escapes removed, for ``in`` checks."""
    return "\n".join(visible_texts(at)).replace("\\", "")
