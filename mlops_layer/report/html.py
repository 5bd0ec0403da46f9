"""HTML for the report pages: one static, self-contained file per model and an inventory page.

Jinja2 with autoescaping renders every value (model card text, comments, rule messages are user-controlled); chart
data goes into ``<script type="application/json">`` blocks with ``<``, ``>`` and ``&`` escaped, and plotly.js is
inlined once per page from the installed plotly package, so the pages need no network and no server.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

from mlops_layer.errors import ConfigError
from mlops_layer.report.page import InventoryPage, ModelPage

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2430;background:#f6f7f9}
header{background:#1f3a5f;color:#fff;padding:18px 28px}
header h1{margin:0;font-size:24px} header p{margin:4px 0 0;opacity:.85}
header a{color:#cfe3ff}
main{padding:8px 28px 40px}
section{background:#fff;border:1px solid #dde2ea;border-radius:6px;margin:16px 0;padding:12px 18px}
h2{font-size:18px;margin:6px 0 10px;color:#1f3a5f}
table{border-collapse:collapse;width:100%;font-size:13px;margin:6px 0}
th,td{border-bottom:1px solid #e6e9ef;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eef2f7}
code{font-size:12px;word-break:break-all}
.ok{color:#137333;font-weight:600} .bad{color:#b3261e;font-weight:600} .muted{color:#6b7280}
.pill{display:inline-block;border-radius:10px;padding:1px 8px;background:#e8eefc;margin:1px}
.note{background:#fff7e0;border-left:4px solid #f0b400;padding:6px 10px;margin:6px 0}
.chart{width:100%;height:360px}
"""

_BASE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="mlops_layer report">
<title>{% block title %}{% endblock %}</title>
<style>{{ css|safe }}</style>
{% if plotly_js %}<script>{{ plotly_js|safe }}</script>{% endif %}
</head><body>
{% block body %}{% endblock %}
<footer class="muted" style="padding:0 28px 20px">Generated {{ when(generated_at) }} by mlops_layer from the audit
trail (oldest entry held: {% if audit.oldest_seq %}#{{ audit.oldest_seq }} of {{ when(audit.oldest_time) }}{% else %}none
{% endif %}). The trail is never pruned.</footer>
</body></html>
"""

_AUDIT = """<section id="audit"><h2>Audit trail</h2>
<table><tbody>
<tr><th>entries</th><td id="audit-size">{{ audit.size }}</td></tr>
<tr><th>head</th><td><code id="audit-head">{{ audit.head }}</code></td></tr>
<tr><th>oldest entry held</th><td id="audit-oldest">{% if audit.oldest_seq %}#{{ audit.oldest_seq }}, {{ when(audit.oldest_time) }}{% else %}none{% endif %}</td></tr>
<tr><th>newest signed checkpoint</th><td>{% if audit.checkpoint_size is not none %}size {{ audit.checkpoint_size }}, {{ audit.checkpoint_time }}, signed by {{ audit.checkpoint_signer or "?" }} <code>{{ audit.checkpoint_key or "" }}</code>{% else %}none{% endif %}</td></tr>
<tr><th>checkpoint status</th><td id="audit-status" class="{{ 'ok' if audit.checkpoint_ok and not audit.unanchored else 'bad' }}">{{ audit.status }}</td></tr>
</tbody></table></section>
"""

_MODEL = _BASE.replace("{% block title %}{% endblock %}", "{{ page.name }} — model report").replace(
    "{% block body %}{% endblock %}",
    """<header><h1 id="model-name">{{ page.name }}</h1>
<p>{% if page.serving %}In service: <b id="serving">v{{ page.serving[1] }} @{{ page.serving[0] }}</b>{% else %}<span id="serving">no version in service</span>{% endif %}
· {{ page.versions|length }} versions · {{ page.entry_count }} audit entries · <a href="index.html">all models</a></p></header>
<main>
{% for note in page.notes %}<p class="note">{{ note }}</p>{% endfor %}
<section id="card"><h2>Model card</h2>
{% if page.card %}<table><thead><tr><th>question</th><th>answer</th><th>card field</th></tr></thead><tbody>
{% for a in page.card %}<tr><td>{{ a.question }}</td><td class="answer">{{ a.answer }}</td><td><code>{{ a.field }}</code></td></tr>{% endfor %}
</tbody></table><p class="muted">card hash (git blob) <code>{{ page.card_hash }}</code></p>
{% else %}<p class="bad">No valid model card: {{ page.card_error or "none found" }}</p>{% endif %}
</section>

<section id="timeline"><h2>Versions and aliases over time</h2>
<div id="chart-timeline" class="chart"></div>
<table><thead><tr><th>alias</th><th>version</th><th>from</th><th>until</th><th>moved by</th><th>via</th></tr></thead><tbody>
{% for s in page.spans %}<tr><td>@{{ s.alias }}</td><td>v{{ s.version }}</td><td>{{ when(s.start) }}</td><td>{{ when(s.end) if s.end else "now" }}</td><td>{{ s.actor }}</td><td>{{ s.via or "" }}</td></tr>{% else %}<tr><td colspan="6" class="muted">no alias has been set through the layer</td></tr>{% endfor %}
</tbody></table></section>

<section id="lineage"><h2>Lineage</h2>
<table><thead><tr><th>version</th><th>registered</th><th>git commit</th><th>data (DVC hash)</th><th>params</th><th>parent chain</th><th>aliases</th></tr></thead><tbody>
{% for v in page.versions %}<tr id="version-{{ v.version }}"><td>v{{ v.version }}{% if not v.in_registry %} <span class="muted">(not in registry)</span>{% endif %}</td>
<td>{{ when(v.registered_at) }}<br><span class="muted">{{ v.registered_by }}{% if v.audit_seq %} · entry #{{ v.audit_seq }}{% endif %}</span></td>
<td><code>{{ v.git_commit or "" }}</code>{% if v.run_id %}<br><span class="muted">run <code>{{ v.run_id }}</code></span>{% endif %}</td>
<td>{% for path, h in v.data %}<code>{{ path }}</code> <code class="muted">{{ h }}</code><br>{% endfor %}</td>
<td>{% for k, val in v.params %}<code>{{ k }}={{ val }}</code><br>{% endfor %}</td>
<td>{{ v.parent_chain|join(" ← ") if v.parent_chain else "none" }}</td>
<td>{% for a in v.aliases %}<span class="pill">@{{ a }}</span>{% endfor %}</td></tr>{% endfor %}
</tbody></table></section>

<section id="decisions"><h2>Decisions</h2>
{% for d in page.decisions %}<div class="decision" id="decision-{{ d.seq }}">
<p><b class="{{ 'ok' if d.allowed else 'bad' }}">{{ "allowed" if d.allowed else "refused" }}</b>: {{ d.action }} v{{ d.version }} → @{{ d.target }}
(holder then: {{ "v" ~ d.current_holder if d.current_holder else "none" }}) — {{ when(d.time) }} by {{ d.actor }}, entry #{{ d.seq }}<br>
<span class="muted">policy hash <code>{{ d.policy_hash }}</code> · card hash <code>{{ d.card_hash or "none" }}</code></span></p>
<table><thead><tr><th>rule</th><th>result</th><th>observed</th><th>expected</th><th>message</th></tr></thead><tbody>
{% for r in d.rules %}<tr><td>{{ r.name }}</td><td class="{{ 'ok' if r.passed else 'bad' }}">{{ "pass" if r.passed else "FAIL" }}</td><td><code>{{ r.observed }}</code></td><td><code>{{ r.expected }}</code></td><td>{{ r.message }}</td></tr>{% endfor %}
</tbody></table></div>{% else %}<p class="muted">no promotion or rollback decision yet</p>{% endfor %}
</section>

<section id="approvals"><h2>Approvals</h2>
<table><thead><tr><th>entry</th><th>when</th><th>decision</th><th>for</th><th>signer</th><th>key fingerprint</th><th>comment</th></tr></thead><tbody>
{% for a in page.approvals %}<tr><td>#{{ a.seq }}</td><td>{{ when(a.time) }}</td><td class="{{ 'ok' if a.decision == 'approve' else 'bad' }}">{{ a.decision }}</td><td>{{ a.action }} v{{ a.version }} → @{{ a.target }}</td><td>{{ a.signer }}</td><td><code>{{ a.key_fingerprint or "unsigned" }}</code></td><td class="comment">{{ a.comment }}</td></tr>{% else %}<tr><td colspan="7" class="muted">no approvals</td></tr>{% endfor %}
</tbody></table>
{% if page.waiting %}<p>Approvals waiting: {% for w in page.waiting %}<span class="pill">{{ w }}</span>{% endfor %}</p>{% endif %}
</section>

<section id="monitoring"><h2>Drift and monitoring over time</h2>
<p class="muted">{{ page.points|length }} points ({{ batches }} monitored batches, {{ checks }} drift checks); red dotted lines mark alert firings.</p>
<div id="chart-drift" class="chart"></div>
{% if page.metric_names %}<div id="chart-metrics" class="chart"></div>{% endif %}
</section>

<section id="alerts"><h2>Alerts</h2>
<h3 style="font-size:15px">Open</h3>
<table><thead><tr><th>rule</th><th>fired</th><th>version</th><th>severity</th><th>message</th></tr></thead><tbody>
{% for a in page.open_alerts %}<tr class="open-alert"><td>{{ a.rule }}</td><td>{{ when(a.time) }} (entry #{{ a.seq }})</td><td>v{{ a.version }}</td><td>{{ a.severity }}</td><td>{{ a.message }}</td></tr>{% else %}<tr><td colspan="5" class="ok">no open alerts</td></tr>{% endfor %}
</tbody></table>
<p class="muted">{{ page.alerts|length }} alert events in the trail.</p>
</section>
"""
    + _AUDIT
    + """</main>
<script type="application/json" id="chart-data">{{ chart_json|safe }}</script>
<script>{{ boot_js|safe }}</script>""",
)

_INVENTORY = _BASE.replace("{% block title %}{% endblock %}", "Model inventory").replace(
    "{% block body %}{% endblock %}",
    """<header><h1 id="inventory-title">Model inventory</h1><p>{{ page.models|length }} model{{ "" if page.models|length == 1 else "s" }}</p></header>
<main>
{% for note in page.notes %}<p class="note">{{ note }}</p>{% endfor %}
<section id="models"><h2>Models</h2>
<table><thead><tr><th>model</th><th>owner</th><th>serving version</th><th>aliases</th><th>last drift verdict</th><th>open alerts</th><th>approvals waiting</th><th>versions</th></tr></thead><tbody>
{% for m in page.models %}<tr class="model-row"><td><a href="{{ m.page }}">{{ m.name }}</a></td><td>{{ m.owner }}</td>
<td>{% if m.serving %}v{{ m.serving[1] }} @{{ m.serving[0] }}{% else %}<span class="muted">none</span>{% endif %}</td>
<td>{% for a, v in m.aliases %}<span class="pill">@{{ a }}=v{{ v }}</span>{% endfor %}</td>
<td>{% if m.last_drift %}<span class="{{ 'ok' if m.last_drift in ('ok', 'passed') else 'bad' }}">{{ m.last_drift }}</span> <span class="muted">{{ when(m.last_drift_time) }}</span>{% else %}<span class="muted">never checked</span>{% endif %}</td>
<td class="{{ 'bad' if m.open_alerts else 'ok' }}">{{ m.open_alerts|join(", ") if m.open_alerts else "none" }}</td>
<td>{{ m.waiting|join("; ") if m.waiting else "none" }}</td><td>{{ m.versions }}</td></tr>{% else %}<tr><td colspan="8" class="muted">no models</td></tr>{% endfor %}
</tbody></table></section>
"""
    + _AUDIT
    + "</main>",
)

# Draws the charts from the JSON block; when plotly.js is missing the tables still tell the story.
_BOOT_JS = """
(function () {
  var data = JSON.parse(document.getElementById('chart-data').textContent);
  if (typeof Plotly === 'undefined') { return; }
  var cfg = {responsive: true, displaylogo: false};
  Object.keys(data).forEach(function (id) {
    var el = document.getElementById(id);
    if (el) { Plotly.newPlot(el, data[id].traces, data[id].layout, cfg); }
  });
})();
"""


@lru_cache(maxsize=1)
def plotly_js() -> str:
    """plotly.min.js from the installed plotly package (no CDN: the page must work offline)."""
    from importlib import resources

    try:
        return resources.files("plotly").joinpath("package_data", "plotly.min.js").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError, OSError) as exc:
        raise ConfigError(
            f"plotly.js is not available from the installed plotly package ({exc})",
            hint="pip install plotly (it comes with evidently)",
        ) from None


def _when(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def _iso(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def script_json(value: Any) -> str:
    """JSON safe inside a <script> element: no ``</script>``, no ``<!--``, no HTML entity surprises."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return (
        text.replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    env.globals["when"] = _when
    return env


def chart_data(page: ModelPage) -> dict[str, Any]:
    """The plotly figures of a model page, as plain JSON: alias timeline, drift share, monitored metrics."""
    now = page.generated_at
    charts: dict[str, Any] = {}
    timeline: list[dict[str, Any]] = []
    for alias in sorted({s.alias for s in page.spans}):
        spans = [s for s in page.spans if s.alias == alias]
        timeline.append(
            {
                "type": "bar",
                "orientation": "h",
                "name": f"@{alias}",
                "y": [f"@{alias}"] * len(spans),
                "base": [_iso(s.start) for s in spans],
                "x": [max(((s.end or now) - s.start).total_seconds() * 1000.0, 1.0) for s in spans],
                "text": [f"v{s.version}" for s in spans],
                "textposition": "inside",
                "hovertext": [f"@{alias} = v{s.version} from {_when(s.start)} by {s.actor}" for s in spans],
                "hoverinfo": "text",
            }
        )
    registered = [v for v in page.versions if v.registered_at is not None]
    if registered:
        timeline.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": "registered",
                "y": ["registered"] * len(registered),
                "x": [_iso(v.registered_at) for v in registered if v.registered_at is not None],
                "text": [f"v{v.version}" for v in registered],
                "hoverinfo": "text+x",
                "marker": {"symbol": "diamond", "size": 7},
            }
        )
    charts["chart-timeline"] = {
        "traces": timeline,
        "layout": {
            "barmode": "overlay",
            "xaxis": {"type": "date", "title": {"text": "time (UTC)"}},
            "margin": {"l": 90, "r": 20, "t": 20, "b": 50},
            "showlegend": True,
        },
    }
    fired = [a for a in page.alerts if a.kind == "fired"]
    shapes = [
        {
            "type": "line",
            "xref": "x",
            "yref": "paper",
            "x0": _iso(a.time),
            "x1": _iso(a.time),
            "y0": 0,
            "y1": 1,
            "line": {"color": "#b3261e", "dash": "dot", "width": 1.5},
        }
        for a in fired
    ]
    alert_marks = {
        "type": "scatter",
        "mode": "markers",
        "name": "alert fired",
        "x": [_iso(a.time) for a in fired],
        "y": [1.0] * len(fired),
        "yaxis": "y2",
        "text": [f"{a.rule} ({a.severity}): {a.message}" for a in fired],
        "hoverinfo": "text+x",
        "marker": {"color": "#b3261e", "symbol": "triangle-down", "size": 11},
    }
    batches = [p for p in page.points if p.kind == "batch" and p.drift_share is not None]
    checks = [p for p in page.points if p.kind == "drift_check" and p.drift_share is not None]
    drift_traces: list[dict[str, Any]] = [
        {
            "type": "scattergl" if len(batches) > 2000 else "scatter",
            "mode": "lines+markers",
            "name": "batch drift share",
            "x": [_iso(p.time) for p in batches],
            "y": [p.drift_share for p in batches],
            "text": [f"v{p.version} · {p.verdict} · entry #{p.seq}" for p in batches],
        },
        {
            "type": "scatter",
            "mode": "markers",
            "name": "drift check",
            "x": [_iso(p.time) for p in checks],
            "y": [p.drift_share for p in checks],
            "text": [f"v{p.version} · {p.verdict} · entry #{p.seq}" for p in checks],
            "marker": {"symbol": "square", "size": 8},
        },
    ]
    if fired:
        drift_traces.append(alert_marks)
    overlay = {"overlaying": "y", "range": [0, 1.05], "visible": False, "fixedrange": True}
    charts["chart-drift"] = {
        "traces": drift_traces,
        "layout": {
            "xaxis": {"type": "date", "title": {"text": "time (UTC)"}},
            "yaxis": {"title": {"text": "share of drifted columns"}, "rangemode": "tozero"},
            "yaxis2": overlay,
            "shapes": shapes,
            "margin": {"l": 60, "r": 20, "t": 20, "b": 50},
        },
    }
    if page.metric_names:
        metric_traces: list[dict[str, Any]] = []
        for name in page.metric_names:
            pts = [(p, dict(p.metrics)[name]) for p in page.points if name in dict(p.metrics)]
            metric_traces.append(
                {
                    "type": "scatter",
                    "mode": "lines+markers",
                    "name": name,
                    "x": [_iso(p.time) for p, _ in pts],
                    "y": [value for _, value in pts],
                }
            )
        if fired:
            metric_traces.append(alert_marks)
        charts["chart-metrics"] = {
            "traces": metric_traces,
            "layout": {
                "xaxis": {"type": "date", "title": {"text": "time (UTC)"}},
                "yaxis": {"title": {"text": "metric"}},
                "yaxis2": overlay,
                "shapes": shapes,
                "margin": {"l": 60, "r": 20, "t": 20, "b": 50},
            },
        }
    return charts


def render_model_page(page: ModelPage, *, inline_js: bool = True) -> str:
    """The self-contained HTML of a model's page (plotly.js inlined once unless ``inline_js`` is False)."""
    template = _environment().from_string(_MODEL)
    return str(
        template.render(
            page=page,
            audit=page.audit,
            generated_at=page.generated_at,
            css=_CSS,
            plotly_js=plotly_js() if inline_js else "",
            chart_json=script_json(chart_data(page)),
            boot_js=_BOOT_JS,
            batches=sum(1 for p in page.points if p.kind == "batch"),
            checks=sum(1 for p in page.points if p.kind == "drift_check"),
        )
    )


def render_inventory(page: InventoryPage) -> str:
    """The inventory page (no charts, so no plotly.js)."""
    template = _environment().from_string(_INVENTORY)
    return str(template.render(page=page, audit=page.audit, generated_at=page.generated_at, css=_CSS, plotly_js=""))
