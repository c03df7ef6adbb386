"""The HTML report: one file that opens offline, in any browser, from a laptop or a cluster share.

Sections: the leaderboard (click a header to sort; best per task marked by each metric's
direction; missing metrics with their reasons), detection tables (metrics of the ``detection``
group, :mod:`harness.metrics.directions`), paired comparisons per task, an image viewer per
task, the OOD heatmaps and severity curves of studies the runs belong to, a
quality-against-latency scatter, and the run metadata (versions, git hash, device, argv,
restorer cards, task conventions).

Why it is built this way:

* **No network, no framework.** Plain JS and CSS inline; images are embedded as base64 PNG
  (or, above ``embed_limit`` bytes, copied into ``<report>_files/`` beside the file and linked
  relatively — the folder then travels with the report). Figures are matplotlib PNGs.
* **The viewer shows LQ | every restorer | GT per sample** from the run's previews
  (:mod:`harness.io.previews`). Zoom (wheel, buttons) and pan (drag) are shared by every panel of a
  task, so the same crop is compared everywhere. The error-map toggle draws ``|X − GT|`` (or
  ``|X − LQ|``, what the restorer changed, for tasks without GT) per pixel, mean over RGB, times
  a gain, on a black-red-yellow-white ramp — computed in the browser from the embedded pixels,
  so it costs no extra file size.
* **Nothing is recomputed**: numbers come from ``results.json`` / ``samples.jsonl``; the paired
  statistics are computed from the per-image records (:mod:`harness.report.paired`).
"""

from __future__ import annotations

import base64
import hashlib
import html
import itertools
import json
import math
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.io.previews import read_previews
from harness.report.figures import StudyOutputs, study_outputs
from harness.report.leaderboard import Leaderboard, direction_legend, header, value_text
from harness.report.load import RunData, Unit
from harness.report.paired import compare_records, result_frame

EMBED_LIMIT = 48 * 1024 * 1024
MAX_PAIRED_UNITS = 8
#: fewer resamples than ``bench compare`` (9999): every pair × metric of every task is tested here,
#: and 2000 keeps the p-value's Monte-Carlo error near 0.005 (exact anyway for n ≤ 10).
HTML_RESAMPLES = 2000
PANEL_METRICS = ("psnr", "ssim", "lpips", "niqe")


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


@dataclass
class Images:
    """Turns image files into ``src`` values: data URIs, or copies beside the report."""

    out_path: Path
    embed: bool
    files_dir: Path = field(init=False)
    _cache: dict[Path, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.files_dir = self.out_path.with_name(self.out_path.stem + "_files")

    def src(self, path: Path) -> str:
        path = Path(path)
        if path not in self._cache:
            data = path.read_bytes()
            if self.embed:
                mime = "image/jpeg" if path.suffix.lower() in (".jpg", ".jpeg") else "image/png"
                self._cache[path] = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
            else:
                self.files_dir.mkdir(parents=True, exist_ok=True)
                name = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:16] + path.suffix.lower()
                shutil.copyfile(path, self.files_dir / name)
                self._cache[path] = f"{self.files_dir.name}/{name}"
        return self._cache[path]


# Sections ---------------------------------------------------------------------------------------
def _leaderboard_table(board: Leaderboard, table_id: str) -> str:
    head = (["run"] if board.multi_run else []) + ["restorer", "task"]
    head += [header(board, m) for m in board.metrics] + ["n", "failed"]
    lines = [f'<table class="sortable board" id="{esc(table_id)}"><thead><tr>']
    lines += [f'<th title="click to sort">{esc(h)}</th>' for h in head]
    lines.append("</tr></thead><tbody>")
    for row in board.rows:
        cells = ([f"<td>{esc(row.run_id)}</td>"] if board.multi_run else [])
        cells += [f"<td>{esc(row.restorer)}</td>", f"<td>{esc(row.task)}</td>"]
        for metric in board.metrics:
            cell = row.cells[metric]
            if cell.agg is None:
                index = board.note_index(cell.missing or metric)
                cells.append(f'<td class="missing" data-value="" title="{esc(cell.missing)}">'
                             f'missing <a href="#{table_id}-note-{index}">[{index}]</a></td>')
            else:
                cls = ' class="best"' if cell.best else ""
                cells.append(f'<td{cls} data-value="{cell.agg.mean!r}">{esc(value_text(row, cell))}</td>')
        cells += [f'<td data-value="{row.n_ok}">{row.n_ok}</td>',
                  f'<td data-value="{row.n_failed}">{row.n_failed}</td>']
        lines.append("<tr>" + "".join(cells) + "</tr>")
    lines.append("</tbody></table>")
    lines.append(f'<p class="legend">{esc(direction_legend(board))}</p>')
    if board.notes:
        lines.append('<ol class="notes">' + "".join(
            f'<li id="{esc(table_id)}-note-{i}">{esc(n)}</li>' for i, n in enumerate(board.notes, 1))
            + "</ol>")
    lines.append("<p><b>Conventions</b></p><ul class=\"conventions\">" + "".join(
        f"<li>{esc(line)}</li>" for lines_ in board.conventions.values() for line in lines_) + "</ul>")
    return "\n".join(lines)


def _frame_table(frame: Any, cls: str = "") -> str:
    lines = [f'<table class="sortable {cls}"><thead><tr>'
             + "".join(f"<th>{esc(c)}</th>" for c in frame.columns) + "</tr></thead><tbody>"]
    for row in frame.itertuples(index=False):
        lines.append("<tr>" + "".join(f"<td>{esc('–' if v is None else v)}</td>" for v in row) + "</tr>")
    return "\n".join(lines + ["</tbody></table>"])


def _unit_label(run: RunData, unit: Unit, multi_run: bool) -> str:
    return run.label(unit.restorer) + (f" ({unit.run_id})" if multi_run else "")


def _paired_section(runs: list[RunData], board: Leaderboard) -> str:
    """Every pair of units per task (first :data:`MAX_PAIRED_UNITS` units), per-image metrics."""
    multi = len(runs) > 1
    parts = []
    tasks = list(dict.fromkeys(u.task for r in runs for u in r.units))
    directions = dict(board.directions)
    for task in tasks:
        units = [(r, u) for r in runs for u in r.units if u.task == task]
        if len(units) < 2:
            continue
        parts.append(f"<h3>{esc(task)}</h3>")
        if len(units) > MAX_PAIRED_UNITS:
            parts.append(f"<p>Showing the first {MAX_PAIRED_UNITS} of {len(units)} restorers; "
                         "use <code>bench compare A B --task T</code> for the others.</p>")
            units = units[:MAX_PAIRED_UNITS]
        for (run_a, a), (run_b, b) in itertools.combinations(units, 2):
            metrics = [m for m in board.metrics
                       if any(m in r.get("metrics", {}) or m in r for r in a.records)]
            results = compare_records(a.records, b.records, metrics, directions, resamples=HTML_RESAMPLES)
            la, lb = _unit_label(run_a, a, multi), _unit_label(run_b, b, multi)
            parts.append(f'<p class="pair"><b>A</b> = {esc(la)}, <b>B</b> = {esc(lb)}</p>')
            parts.append(_frame_table(result_frame(results, "A", "B"), "paired"))
    if not parts:
        return "<p>Paired comparisons need at least two restorers on one task.</p>"
    intro = ("<p>Per image, on the images both restorers scored: mean difference A − B with a "
             "bootstrap 95% CI, a paired permutation p-value and a Wilcoxon signed-rank p-value, and "
             f"the share of images on which A is better in the metric's direction ({HTML_RESAMPLES} "
             "resamples; <code>bench compare</code> uses more).</p>")
    return intro + "\n".join(parts)


def _by_sample(unit: Unit) -> dict[str, dict[str, Any]]:
    """sample_id → record (the last one wins, as a resumed run appends)."""
    return {str(r.get("sample_id")): r for r in unit.records}


def _caption(record: dict[str, Any]) -> str:
    if not record:
        return ""
    if record.get("status") == "failed":
        return "failed: " + str(record.get("error", ""))[:120]
    metrics = record.get("metrics", {})
    bits = [f"{m} {metrics[m]:.4g}" for m in PANEL_METRICS
            if isinstance(metrics.get(m), (int, float)) and math.isfinite(metrics[m])]
    return ", ".join(bits)


def _panel(role: str, label: str, path: Path | None, images: Images, caption: str = "") -> str:
    if path is None:
        body = '<div class="nopreview">no preview</div>'
    else:
        body = (f'<img data-role="{role}" alt="{esc(label)}" draggable="false" '
                f'src="{images.src(path)}">')
    return (f'<figure class="panel"><figcaption><b>{esc(label)}</b>'
            f'<span class="cap">{esc(caption)}</span></figcaption>'
            f'<div class="frame">{body}</div></figure>')


def _panel_width(n_panels: int) -> int:
    """Panels of one sample fit a ~1300 px line: 256 px each for few restorers, ≥ 160 px for many."""
    return max(160, min(256, 1300 // max(1, n_panels) - 6))


def _viewer_section(runs: list[RunData], images: Images, max_samples: int | None) -> tuple[str, int]:
    """One viewer per task; returns the HTML and the number of preview images it shows."""
    multi = len(runs) > 1
    parts: list[str] = []
    shown = 0
    tasks = list(dict.fromkeys(u.task for r in runs for u in r.units))
    for t_index, task in enumerate(tasks):
        pairs = [(r, u) for r in runs for u in r.units if u.task == task]
        records = {id(u): _by_sample(u) for _, u in pairs}
        sample_ids = list(dict.fromkeys(str(rec["sample_id"]) for _, u in pairs for rec in u.records
                                        if "sample_id" in rec))
        total = len(sample_ids)
        if max_samples is not None:
            sample_ids = sample_ids[:max_samples]
        rows = []
        for sample_id in sample_ids:
            lq = gt = None
            outs = []
            for run, unit in pairs:
                found = read_previews(run.run_dir, unit.restorer, task, sample_id)
                lq, gt = lq or found.lq, gt or found.gt
                outs.append((run, unit, found.out))
            if lq is None and all(p is None for _, _, p in outs):
                continue
            panels = [_panel("lq", "LQ", lq, images)]
            panels += [_panel("out", _unit_label(r, u, multi), p, images,
                              _caption(records[id(u)].get(sample_id, {}))) for r, u, p in outs]
            if gt is not None:
                panels.append(_panel("gt", "GT", gt, images))
            shown += sum(1 for p in [lq, gt, *(p for _, _, p in outs)] if p is not None)
            rows.append(f'<div class="sample" data-sample="{esc(sample_id)}"><h4>{esc(sample_id)}</h4>'
                        f'<div class="panels">{"".join(panels)}</div></div>')
        parts.append(f'<h3>{esc(task)}</h3>')
        if not rows:
            parts.append("<p>No previews were saved for this task (runs made before previews existed, "
                         "or every image failed).</p>")
            continue
        note = (f"<p>Showing {len(sample_ids)} of {total} samples (<code>--max-samples</code>).</p>"
                if len(sample_ids) < total else "")
        has_gt = any(read_previews(r.run_dir, u.restorer, task, s).gt is not None
                     for r, u in pairs[:1] for s in sample_ids[:1])
        options = ('<option value="image">images</option>'
                   + ('<option value="gt">error map |X − GT|</option>' if has_gt else "")
                   + '<option value="lq">difference |X − LQ|</option>')
        parts.append(
            f'{note}<div class="viewer" id="viewer-{t_index}" data-task="{esc(task)}" data-zoom="1" '
            f'style="--pw:{_panel_width(len(pairs) + 2)}px">'
            '<div class="controls"><button type="button" class="zoom-in">zoom in</button>'
            '<button type="button" class="zoom-out">zoom out</button>'
            '<button type="button" class="zoom-reset">reset</button>'
            '<span class="zoom-level">1.0×</span>'
            f'<label>show <select class="mode">{options}</select></label>'
            '<label>gain <select class="gain"><option>1</option><option>2</option>'
            '<option selected>4</option><option>8</option><option>16</option></select></label>'
            '<span class="status"></span>'
            '<span class="hint">wheel: zoom at the cursor; drag: pan; all panels follow</span></div>'
            + "".join(rows) + "</div>")
    return "\n".join(parts), shown


def _studies_section(runs: list[RunData], images: Images) -> str:
    studies: list[StudyOutputs] = []
    for run in runs:
        if run.study_dir is not None and all(s.study_dir != run.study_dir for s in studies):
            studies.append(study_outputs(run.study_dir))
    parts = []
    for study in studies:
        parts.append(f"<h3>{esc(study.kind)} study <code>{esc(study.study_dir.name)}</code></h3>")
        for figure in study.figures:
            parts.append(f'<img class="figure" alt="{esc(figure.name)}" src="{images.src(figure)}">')
        for metric, frame in study.tables.items():
            shown = frame.reset_index().map(lambda v: f"{v:.4g}" if isinstance(v, float) else v)
            parts.append(f"<p><b>{esc(metric)}</b> (mean over images)</p>" + _frame_table(shown))
    return "\n".join(parts)


def _metadata_section(runs: list[RunData]) -> str:
    parts = []
    for run in runs:
        p = run.payload
        fields = [("run", run.run_id), ("folder", str(run.run_dir.resolve())),
                  ("schema_version", run.schema_version), ("created", p.get("created")),
                  ("git hash", p.get("git_hash")), ("device", p.get("device")),
                  ("seed", p.get("seed")), ("limit", p.get("limit")),
                  ("argv", " ".join(str(a) for a in p.get("argv") or []))]
        parts.append(f"<h3>{esc(run.run_id)}</h3><table class=\"meta\">" + "".join(
            f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in fields) + "</table>")
        versions = p.get("versions") or {}
        if versions:
            parts.append("<details><summary>versions</summary><table class=\"meta\">" + "".join(
                f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in versions.items())
                + "</table></details>")
        for name, info in (p.get("restorers") or {}).items():
            parts.append(f"<details><summary>restorer {esc(name)}</summary><pre>"
                         f"{esc(json.dumps(info, indent=1, default=str))}</pre></details>")
        for name, info in (p.get("tasks") or {}).items():
            parts.append(f"<details><summary>task {esc(name)} (conventions)</summary><pre>"
                         f"{esc(json.dumps(info, indent=1, default=str))}</pre></details>")
        if run.missing:
            parts.append("<p><b>missing metrics</b></p><ul>" + "".join(
                f"<li><code>{esc(k)}</code>: {esc(v)}</li>" for k, v in run.missing.items()) + "</ul>")
    return "\n".join(parts)


# The page ---------------------------------------------------------------------------------------
CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 24px 48px;color:#222}
nav{position:sticky;top:0;background:#fff;padding:6px 0;border-bottom:1px solid #ddd;z-index:5}
nav a{margin-right:14px}
h2{margin-top:32px;border-bottom:2px solid #eee}
table{border-collapse:collapse;margin:8px 0;font-variant-numeric:tabular-nums}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}
table.sortable th{cursor:pointer;background:#f6f6f6;user-select:none}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
td.best{font-weight:bold;background:#e8f6e8}
td.missing{color:#a60}
table.meta th{text-align:left;background:#f6f6f6}table.meta td{text-align:left;white-space:normal}
.notes,.conventions,.legend{font-size:12px;color:#444}
.viewer{border:1px solid #ddd;padding:8px;margin:8px 0}
.controls{position:sticky;top:34px;background:#fff;padding:4px 0;z-index:4}
.controls>*{margin-right:8px}.hint,.status{color:#666;font-size:12px}
.panels{display:flex;flex-wrap:nowrap;gap:6px;overflow-x:auto}
.panel{margin:0;width:var(--pw,256px);flex:none}
.panel figcaption{font-size:12px;height:46px;overflow:hidden}
.panel .cap{display:block;color:#555}
.frame{position:relative;overflow:hidden;width:var(--pw,256px);background:#111;cursor:grab;line-height:0}
.frame img{display:block;width:100%;transform-origin:0 0;will-change:transform}
.viewer.zoomed .frame img{image-rendering:pixelated}
.nopreview{color:#bbb;line-height:1.4;padding:40px 8px;text-align:center}
img.figure{max-width:100%;display:block;margin:8px 0}
pre{background:#f8f8f8;padding:6px;max-height:320px;overflow:auto;font-size:12px}
"""

JS = r"""
(function () {
  'use strict';
  function sortKey(td) {
    var v = td.getAttribute('data-value');
    if (v === null) { return {missing: false, num: false, v: td.textContent.trim()}; }
    if (v === '') { return {missing: true, num: false, v: ''}; }
    return {missing: false, num: true, v: parseFloat(v)};
  }
  document.querySelectorAll('table.sortable').forEach(function (table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, col) {
      th.addEventListener('click', function () {
        var asc = th.getAttribute('aria-sort') !== 'ascending';
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute('aria-sort'); });
        th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = sortKey(a.cells[col]), y = sortKey(b.cells[col]);
          if (x.missing !== y.missing) { return x.missing ? 1 : -1; }
          var c = (x.num && y.num) ? x.v - y.v
            : String(x.v).localeCompare(String(y.v), undefined, {numeric: true});
          return asc ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });

  function pixels(img) {
    var c = document.createElement('canvas');
    c.width = img.naturalWidth; c.height = img.naturalHeight;
    var g = c.getContext('2d');
    g.drawImage(img, 0, 0);
    return g.getImageData(0, 0, c.width, c.height);
  }
  function cached(img) {
    if (!img.hasAttribute('data-orig')) { img.setAttribute('data-orig', img.src); }
    if (!img._px) { img._px = pixels(img); }  // first call: the original is still displayed
    return img._px;
  }
  function errorMap(a, b, gain) {
    if (a.width !== b.width || a.height !== b.height) { throw new Error('preview sizes differ'); }
    var c = document.createElement('canvas');
    c.width = a.width; c.height = a.height;
    var g = c.getContext('2d');
    var out = g.createImageData(a.width, a.height);
    for (var i = 0; i < a.data.length; i += 4) {
      var e = (Math.abs(a.data[i] - b.data[i]) + Math.abs(a.data[i + 1] - b.data[i + 1]) +
               Math.abs(a.data[i + 2] - b.data[i + 2])) / 765 * gain;
      e = Math.min(1, e) * 3;
      out.data[i] = 255 * Math.min(1, e);
      out.data[i + 1] = 255 * Math.min(1, Math.max(0, e - 1));
      out.data[i + 2] = 255 * Math.min(1, Math.max(0, e - 2));
      out.data[i + 3] = 255;
    }
    g.putImageData(out, 0, 0);
    return c.toDataURL('image/png');
  }

  document.querySelectorAll('.viewer').forEach(function (viewer) {
    var state = {s: 1, x: 0, y: 0};
    var drag = null;
    var status = viewer.querySelector('.status');
    function frames() { return viewer.querySelectorAll('.frame'); }
    function apply() {
      viewer.querySelectorAll('.frame img').forEach(function (img) {
        img.style.transform = 'translate(' + state.x + 'px,' + state.y + 'px) scale(' + state.s + ')';
      });
      viewer.querySelector('.zoom-level').textContent = state.s.toFixed(1) + '\u00d7';
      viewer.setAttribute('data-zoom', String(state.s));
      viewer.classList.toggle('zoomed', state.s > 2);
    }
    function clamp(frame) {
      var w = frame.clientWidth, h = frame.clientHeight;
      state.x = Math.min(0, Math.max(w - w * state.s, state.x));
      state.y = Math.min(0, Math.max(h - h * state.s, state.y));
    }
    function zoomAt(frame, cx, cy, factor) {
      var s = Math.min(32, Math.max(1, state.s * factor));
      var k = s / state.s;
      state.x = cx - (cx - state.x) * k;
      state.y = cy - (cy - state.y) * k;
      state.s = s;
      clamp(frame);
      apply();
    }
    function centre(factor) {
      var f = frames()[0];
      if (f) { zoomAt(f, f.clientWidth / 2, f.clientHeight / 2, factor); }
    }
    frames().forEach(function (frame) {
      frame.addEventListener('wheel', function (e) {
        e.preventDefault();
        var r = frame.getBoundingClientRect();
        zoomAt(frame, e.clientX - r.left, e.clientY - r.top, e.deltaY < 0 ? 1.25 : 0.8);
      }, {passive: false});
      frame.addEventListener('mousedown', function (e) {
        drag = {x: e.clientX, y: e.clientY, sx: state.x, sy: state.y, frame: frame};
        e.preventDefault();
      });
    });
    window.addEventListener('mousemove', function (e) {
      if (!drag) { return; }
      state.x = drag.sx + e.clientX - drag.x;
      state.y = drag.sy + e.clientY - drag.y;
      clamp(drag.frame);
      apply();
    });
    window.addEventListener('mouseup', function () { drag = null; });
    viewer.querySelector('.zoom-in').addEventListener('click', function () { centre(1.5); });
    viewer.querySelector('.zoom-out').addEventListener('click', function () { centre(1 / 1.5); });
    viewer.querySelector('.zoom-reset').addEventListener('click', function () {
      state = {s: 1, x: 0, y: 0}; apply();
    });

    var modeSel = viewer.querySelector('.mode'), gainSel = viewer.querySelector('.gain');
    function setMode() {
      var mode = modeSel.value, gain = parseFloat(gainSel.value);
      var failed = 0, drawn = 0;
      viewer.querySelectorAll('.sample').forEach(function (sample) {
        var imgs = sample.querySelectorAll('img');
        var ok = true;
        imgs.forEach(function (img) {
          try { cached(img); } catch (err) { ok = false; }  // tainted (linked file) images
        });
        var ref = sample.querySelector('img[data-role="' + mode + '"]');
        sample.querySelectorAll('img[data-role="out"], img[data-role="lq"]').forEach(function (img) {
          if (mode === 'image' || !ref || img === ref || !ok) {
            img.src = img.getAttribute('data-orig');
            if (!ok && mode !== 'image') { failed += 1; }
            return;
          }
          img._maps = img._maps || {};
          var key = mode + ':' + gain;
          try {
            if (!img._maps[key]) { img._maps[key] = errorMap(img._px, ref._px, gain); }
            img.src = img._maps[key];
            drawn += 1;
          } catch (err) {
            failed += 1;
            img.src = img.getAttribute('data-orig');
          }
        });
      });
      viewer.setAttribute('data-mode', mode);
      status.textContent = mode === 'image' ? '' :
        (failed ? 'error maps unavailable for ' + failed + ' panel(s) (linked, not embedded images)' :
         (mode === 'gt' ? '|X \u2212 GT|' : '|X \u2212 LQ|') + ' \u00d7 ' + gain +
         ', mean over RGB (' + drawn + ' panels)');
    }
    modeSel.addEventListener('change', setMode);
    gainSel.addEventListener('change', setMode);
    apply();
  });
}());
"""


def build_html(runs: list[RunData], board: Leaderboard, detection: Leaderboard | None, out_path: Path,
               *, scatter: Path | None = None, embed: bool | None = None,
               max_samples: int | None = None, title: str = "restorebench report") -> Path:
    """Write the report to ``out_path``; ``embed=None`` embeds unless previews exceed the limit."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if embed is None:
        size = sum(p.stat().st_size for r in runs for p in (r.run_dir / "previews").rglob("*.png")
                   ) if any((r.run_dir / "previews").is_dir() for r in runs) else 0
        embed = size <= EMBED_LIMIT
    images = Images(out_path, embed)
    viewer, _ = _viewer_section(runs, images, max_samples)
    studies = _studies_section(runs, images)
    sections = [("leaderboard", "Leaderboard", _leaderboard_table(board, "leaderboard-table"))]
    if detection is not None and detection.metrics:
        sections.append(("detection", "Detection", _leaderboard_table(detection, "detection-table")))
    sections.append(("viewer", "Images", viewer))
    sections.append(("paired", "Paired comparisons", _paired_section(runs, board)))
    if studies:
        sections.append(("studies", "Studies", studies))
    if scatter is not None:
        sections.append(("scatter", "Quality against latency",
                         f'<img class="figure" alt="quality against latency" src="{images.src(scatter)}">'))
    sections.append(("metadata", "Runs", _metadata_section(runs)))
    created = datetime.now(UTC).isoformat(timespec="seconds")
    nav = "".join(f'<a href="#{sid}">{esc(name)}</a>' for sid, name, _ in sections)
    body = "\n".join(f'<section id="{sid}"><h2>{esc(name)}</h2>\n{content}\n</section>'
                     for sid, name, content in sections)
    page = (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<link rel="icon" href="data:,"><title>{esc(title)}</title><style>{CSS}</style></head>\n'
            f'<body><nav>{nav}</nav><h1>{esc(title)}</h1>'
            f'<p>{len(runs)} run(s): {esc(", ".join(r.run_id for r in runs))}; generated {esc(created)}'
            f' from results.json / samples.jsonl (nothing recomputed).</p>\n{body}\n'
            f'<script>{JS}</script></body></html>\n')
    out_path.write_text(page, encoding="utf-8")
    return out_path

