"""A self-contained HTML page showing exactly what the model would see of a notebook.

The thumbnails are the very bytes that would be sent (as data URIs), shown in notebook order
between the text parts; a table lists every image with its size, bytes and token estimate,
and another lists what was left out and why. No scripts, no external resources.
"""

from __future__ import annotations

from html import escape

from jupyter_ai_vision.context.parts import ImagePart, TextPart, VisionContext

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2em; }
table { border-collapse: collapse; width: 100%; } td, th { border-bottom: 1px solid #ddd;
  padding: 4px 8px; text-align: left; vertical-align: top; } th { background: #f5f5f5; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
img.thumb { max-width: 160px; max-height: 120px; border: 1px solid #ccc; }
.stream pre { background: #f8f8f8; border: 1px solid #eee; padding: 6px 8px; margin: 4px 0;
  white-space: pre-wrap; word-break: break-word; }
.stream figure { margin: 8px 0 16px; } .stream figure img { max-width: 100%; border: 1px solid #ccc; }
figcaption { color: #555; font-size: 0.9em; }
.totals { background: #eef5ff; padding: 8px 12px; border-radius: 6px; }
.warn { color: #a40; }
"""


def render_html(ctx: VisionContext) -> str:
    """The report page for ``ctx`` (one string, self-contained)."""
    title = f"What the model sees: {escape(ctx.notebook or 'notebook')}"
    body = [
        f"<h1>{title}</h1>",
        _totals(ctx),
        "<h2>Images sent</h2>",
        _images_table(ctx),
        "<h2>Left out</h2>",
        _skipped_table(ctx),
        "<h2>The full context, in order</h2>",
        _stream(ctx),
    ]
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{title}</title><style>{_STYLE}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def _totals(ctx: VisionContext) -> str:
    model = escape(ctx.model or "unspecified (generic estimate)")
    sent = sum(p.nbytes for p in ctx.images)
    line = (
        f"Model: <b>{model}</b> · images: <b>{len(ctx.images)}</b> · image tokens: "
        f"<b>{ctx.image_tokens}</b> · text tokens ≈ <b>{ctx.text_tokens}</b> · image bytes: "
        f"<b>{_kb(sent)}</b> · left out: <b>{len(ctx.skipped)}</b>"
    )
    if ctx.focus_cell_index is not None:
        line += f" · focused cell: <b>{ctx.focus_cell_index}</b>"
    if not ctx.images_supported:
        line += "<br><span class='warn'>This model does not accept images: text stubs only.</span>"
    return f"<p class='totals'>{line}</p>"


def _images_table(ctx: VisionContext) -> str:
    if not ctx.images:
        return "<p>No images are sent.</p>"
    rows = [
        "<tr><th>#</th><th>thumbnail (as sent)</th><th>cell</th><th>kind</th>"
        "<th>original → sent</th><th>bytes</th><th>tokens</th><th>sha256</th></tr>"
    ]
    for n, img in enumerate(ctx.images, 1):
        prov = img.provenance
        cell = escape(prov.label()) + (
            f"<br><small>id {escape(prov.cell_id)}</small>" if prov.cell_id else ""
        )
        rows.append(
            f"<tr><td>{n}</td><td><img class='thumb' alt='figure {n}' src='{img.data_uri()}'></td>"
            f"<td>{cell}</td><td>{escape(prov.kind)}<br><small>{escape(img.mime)}</small></td>"
            f"<td>{img.original_width}×{img.original_height} → {img.width}×{img.height}</td>"
            f"<td class='num'>{_kb(img.original_bytes)} → {_kb(img.nbytes)}</td>"
            f"<td class='num'>{img.tokens}</td><td><code>{img.sha256[:12]}</code></td></tr>"
        )
    return "<table>" + "".join(rows) + "</table>"


def _skipped_table(ctx: VisionContext) -> str:
    if not ctx.skipped:
        return "<p>Nothing was left out.</p>"
    rows = ["<tr><th>cell</th><th>kind</th><th>reason</th></tr>"]
    for item in ctx.skipped:
        rows.append(
            f"<tr><td>{escape(item.provenance.label())}</td><td>{escape(item.provenance.kind)}</td>"
            f"<td>{escape(item.reason)}</td></tr>"
        )
    return "<table>" + "".join(rows) + "</table>"


def _stream(ctx: VisionContext) -> str:
    out = ["<div class='stream'>"]
    n = 0
    for part in ctx.parts:
        if isinstance(part, TextPart):
            out.append(f"<pre>{escape(part.text)}</pre>")
        elif isinstance(part, ImagePart):
            n += 1
            caption = escape(f"figure {n}: {part.provenance.label()}, {part.width}×{part.height}")
            out.append(
                f"<figure><img alt='figure {n}' src='{part.data_uri()}'>"
                f"<figcaption>{caption}</figcaption></figure>"
            )
    out.append("</div>")
    return "\n".join(out)


def _kb(n: int) -> str:
    return f"{n / 1000:.1f} kB" if n < 1_000_000 else f"{n / 1_000_000:.2f} MB"
