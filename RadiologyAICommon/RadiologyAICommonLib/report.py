"""A small self-contained HTML report: title, text, tables and matplotlib figures as PNG.

One file, no external assets (figures are base64 PNG), so it can be mailed or archived
with a study. Written atomically.
"""

from __future__ import annotations

import base64
import html
import io
from datetime import datetime, timezone
from pathlib import Path

from .atomic import write_text

_STYLE = """
body{font-family:Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{border-bottom:2px solid #345}h2{color:#345;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #bbb;padding:3px 8px;text-align:right}th{background:#eef2f6}
td:first-child,th:first-child{text-align:left}figure{margin:1em 0}figcaption{font-size:.85em;color:#555}
.meta{color:#666;font-size:.85em}
"""


class HtmlReport:
    """Build a report section by section, then :meth:`write` it."""

    def __init__(self, title: str):
        self.title = title
        self._parts: list[str] = []

    def heading(self, text: str, level: int = 2) -> "HtmlReport":
        self._parts.append(f"<h{level}>{html.escape(text)}</h{level}>")
        return self

    def paragraph(self, text: str) -> "HtmlReport":
        self._parts.append(f"<p>{html.escape(text)}</p>")
        return self

    def table(self, dataframe, caption: str | None = None, float_format: str = "{:.3g}") -> "HtmlReport":
        """A pandas DataFrame as an HTML table (values escaped)."""
        header = "".join(f"<th>{html.escape(str(c))}</th>" for c in dataframe.columns)
        rows = []
        for values in dataframe.itertuples(index=False):
            cells = []
            for value in values:
                text = float_format.format(value) if isinstance(value, float) else str(value)
                cells.append(f"<td>{html.escape(text)}</td>")
            rows.append("<tr>" + "".join(cells) + "</tr>")
        cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        self._parts.append(f"<table>{cap}<thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>")
        return self

    def figure(self, figure, caption: str | None = None, dpi: int = 110) -> "HtmlReport":
        """A matplotlib Figure embedded as PNG; the figure is closed afterwards."""
        import matplotlib.pyplot as plt

        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
        plt.close(figure)
        data = base64.b64encode(buffer.getvalue()).decode("ascii")
        cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        self._parts.append(
            f'<figure><img alt="{html.escape(caption or "figure")}" src="data:image/png;base64,{data}">{cap}</figure>'
        )
        return self

    def render(self) -> str:
        from . import __version__

        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(self.title)}</title><style>{_STYLE}</style></head><body>"
            f"<h1>{html.escape(self.title)}</h1><p class=\"meta\">RadiologyAI {__version__}, {stamp}</p>"
            + "\n".join(self._parts)
            + "</body></html>\n"
        )

    def write(self, path: str | Path) -> Path:
        return write_text(path, self.render())


def save_figure(figure, path: str | Path, dpi: int = 120) -> Path:
    """Save a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    from .atomic import atomic_path

    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(figure)
    return Path(path)


def new_figure(*args, **kwargs):
    """A matplotlib figure on the non-interactive Agg canvas (safe without a display, in workers)."""
    from matplotlib.figure import Figure

    return Figure(*args, **kwargs)
