"""A self-contained HTML trajectory viewer for evaluation results.

One file, no network: the rows travel as JSON inside the page and every image as a data
URL (shrunk to at most :data:`VIEW_MAX_SIDE` pixels on its longer side). Filters: arm,
transform, correctness (correct / wrong / failed), op used, and free text. Each item shows
the question and accepted answers, then every step side by side (code, stdout, error, the
image it produced), then the answer and the rule that scored it.

Example:
    >>> from langchain_codevision.eval.viewer import write_viewer
    >>> write_viewer(rows, "out/viewer.html", base_dir="out")  # doctest: +SKIP
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_codevision.images import data_url, encode_image, load_image

__all__ = ["VIEW_MAX_SIDE", "render_viewer", "write_viewer"]

VIEW_MAX_SIDE = 640
"""Longest side of an image embedded in the viewer."""

_STYLE = """
body{font-family:system-ui,sans-serif;margin:0;background:#f5f5f5;color:#222}
header{position:sticky;top:0;background:#fff;padding:8px 12px;border-bottom:1px solid #ccc;
 display:flex;gap:10px;flex-wrap:wrap;align-items:center}
.item{background:#fff;margin:10px;padding:10px;border-left:6px solid #999}
.item.correct{border-color:#2a2}.item.wrong{border-color:#c22}.item.failed{border-color:#e90}
.steps{display:flex;flex-direction:column;gap:8px}
.step{display:grid;grid-template-columns:1fr 1fr;gap:8px;border-top:1px dashed #ccc;padding-top:6px}
pre{white-space:pre-wrap;background:#f0f0f0;padding:6px;margin:2px 0;font-size:12px}
.error{color:#b00}.meta{color:#555;font-size:13px}img{max-width:100%;border:1px solid #ddd}
.inputs img{max-height:240px}.step img{max-height:360px}
"""

_SCRIPT = r"""
const rows = JSON.parse(document.getElementById('data').textContent);
const images = JSON.parse(document.getElementById('images').textContent);
const $ = (id) => document.getElementById(id);
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}
function outcome(r) { return r.status === 'failed' ? 'failed' : (r.correct ? 'correct' : 'wrong'); }
function img(path) {
  const i = el('img');
  i.src = images[path] || '';
  i.alt = path;
  i.setAttribute('data-testid', 'image');
  return i;
}
function fill(id, values) {
  const s = $(id);
  for (const v of [...new Set(values)].sort()) {
    const o = el('option', '', v);
    o.value = v;
    s.appendChild(o);
  }
}
fill('f-arm', rows.map(r => r.arm));
fill('f-transform', rows.map(r => r.transform));
fill('f-op', rows.flatMap(r => (r.tool && r.tool.ops_used) || []));
function card(r) {
  const c = el('div', 'item ' + outcome(r));
  c.setAttribute('data-testid', 'item');
  c.dataset.outcome = outcome(r);
  c.appendChild(el('div', 'meta', `${r.id} · ${r.arm} · ${r.transform} · ${r.qtype || ''}`));
  c.appendChild(el('h3', 'question', r.question));
  c.appendChild(el('div', 'meta', 'accepted: ' + (r.answers || []).join(' | ')));
  const byIndex = {};
  for (const im of (r.images || [])) byIndex[im.index] = im.path;
  const inputs = el('div', 'inputs');
  for (const im of (r.images || [])) if (im.origin === 'input') inputs.appendChild(img(im.path));
  c.appendChild(inputs);
  const steps = el('div', 'steps');
  for (const s of (r.steps || [])) {
    const d = el('div', 'step');
    d.setAttribute('data-testid', 'step');
    const left = el('div');
    const head = `step ${s.step} · ${s.description || ''} · image ${s.image_index}`;
    left.appendChild(el('div', 'meta', `${head} · ${s.ok ? 'ok' : 'error'}`));
    left.appendChild(el('pre', 'code', s.code));
    if (s.stdout) left.appendChild(el('pre', 'stdout', s.stdout));
    if (s.error) left.appendChild(el('pre', 'error', s.error));
    const right = el('div');
    for (const k of (s.output_indices || [])) if (byIndex[k]) right.appendChild(img(byIndex[k]));
    d.appendChild(left); d.appendChild(right); steps.appendChild(d);
  }
  c.appendChild(steps);
  if (r.reply) c.appendChild(el('pre', 'reply', r.reply));
  if (r.error) c.appendChild(el('pre', 'error', r.error));
  const a = el('div', 'answer');
  a.setAttribute('data-testid', 'answer');
  const said = r.prediction === null || r.prediction === undefined ? '—' : r.prediction;
  a.textContent = `answer: ${said} · ${outcome(r)} by rule ${r.rule}`;
  c.appendChild(a);
  return c;
}
function render() {
  const arm = $('f-arm').value, tr = $('f-transform').value, oc = $('f-outcome').value;
  const op = $('f-op').value, q = $('f-text').value.toLowerCase();
  const list = $('items');
  list.replaceChildren();
  let shown = 0;
  for (const r of rows) {
    if (arm && r.arm !== arm) continue;
    if (tr && r.transform !== tr) continue;
    if (oc && outcome(r) !== oc) continue;
    if (op && !((r.tool && r.tool.ops_used) || []).includes(op)) continue;
    if (q && !JSON.stringify([r.id, r.question, r.prediction]).toLowerCase().includes(q)) continue;
    list.appendChild(card(r)); shown++;
  }
  $('count').textContent = `${shown} of ${rows.length}`;
}
for (const id of ['f-arm', 'f-transform', 'f-outcome', 'f-op']) {
  $(id).addEventListener('change', render);
}
$('f-text').addEventListener('input', render);
render();
"""


def _data_url(path: Path) -> str:
    image = load_image(path)
    image.thumbnail((VIEW_MAX_SIDE, VIEW_MAX_SIDE))
    return data_url(encode_image(image))


def _json(value: Any) -> str:
    return json.dumps(value, default=str).replace("</", "<\\/")


def render_viewer(
    rows: Sequence[dict[str, Any]],
    base_dir: str | Path,
    title: str = "CodeVision evaluation",
    summary: dict[str, Any] | None = None,
) -> str:
    """The viewer page for ``rows`` (image paths are relative to ``base_dir``)."""
    base = Path(base_dir)
    images: dict[str, str] = {}
    for row in rows:
        for entry in row.get("images") or []:
            path = entry["path"]
            if path not in images and (base / path).exists():
                images[path] = _data_url(base / path)
    arms = (summary or {}).get("arms", {})
    headline = " · ".join(f"{a}: {100 * e['accuracy']:.1f}%" for a, e in arms.items())
    select = '<label>{0} <select id="f-{1}"><option value="">all</option>{2}</select></label>'
    outcomes = "".join(f'<option value="{v}">{v}</option>' for v in ("correct", "wrong", "failed"))
    controls = "".join(
        [
            select.format("arm", "arm", ""),
            select.format("transform", "transform", ""),
            select.format("outcome", "outcome", outcomes),
            select.format("op", "op", ""),
            '<input id="f-text" placeholder="search" type="search">',
            '<span id="count"></span>',
        ]
    )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<header><strong>{html.escape(title)}</strong><span>{html.escape(headline)}</span>"
        f"{controls}</header><main id='items'></main>"
        f"<script type='application/json' id='data'>{_json(list(rows))}</script>"
        f"<script type='application/json' id='images'>{_json(images)}</script>"
        f"<script>{_SCRIPT}</script></body></html>"
    )


def write_viewer(
    rows: Sequence[dict[str, Any]],
    path: str | Path,
    base_dir: str | Path | None = None,
    summary: dict[str, Any] | None = None,
) -> Path:
    """Write the viewer to ``path``; image paths are relative to ``base_dir`` (its folder)."""
    path = Path(path)
    page = render_viewer(rows, base_dir or path.parent, summary=summary)
    path.write_text(page, encoding="utf-8")
    return path
