"""The admin API reference page at /admin/api/v1/: the OpenAPI document rendered on the server
as plain HTML (operations, parameters, bodies, answers, schemas), no script and no external
style sheet."""

from __future__ import annotations

import json
from html import escape
from typing import Any

_STYLE = """body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
h2{border-bottom:1px solid #ccc;margin-top:2.5rem}section.op{border:1px solid #ddd;border-radius:6px;padding:.5rem 1rem;
margin:1rem 0}code,pre{font-family:ui-monospace,monospace;font-size:13px}pre{background:#f6f6f6;padding:.5rem;
overflow:auto}.m{font-weight:bold;display:inline-block;min-width:4.5rem}table{border-collapse:collapse}
td,th{border:1px solid #ddd;padding:.2rem .5rem;text-align:left;vertical-align:top}"""


def _schema_name(schema: dict[str, Any] | None) -> str:
    if not schema:
        return ""
    target = schema.get("$ref", "")
    name = target.rsplit("/", 1)[-1]
    return f'<a href="#schema-{escape(name)}">{escape(name)}</a>' if name else escape(json.dumps(schema))


def _operation(method: str, path: str, op: dict[str, Any]) -> str:
    out = [f'<section class="op" id="{escape(op["operationId"])}"><h3><span class="m">{method.upper()}</span>'
           f'<code>{escape(path)}</code></h3><p>{escape(op["summary"])}</p>',
           f'<p>Scope: <code>{escape(op["security"][0]["bearer"][0])}</code></p>']
    if op.get("parameters"):
        out.append("<table><tr><th>Parameter</th><th>In</th><th>Required</th><th>Description</th></tr>")
        for p in op["parameters"]:
            required = "yes" if p.get("required") else "no"
            out.append(f'<tr><td><code>{escape(p["name"])}</code></td><td>{escape(p["in"])}</td>'
                       f'<td>{required}</td><td>{escape(p.get("description", ""))}</td></tr>')
        out.append("</table>")
    body = op.get("requestBody")
    if body:
        out.append(f'<p>Body (application/json): {_schema_name(body["content"]["application/json"]["schema"])}</p>')
    out.append("<table><tr><th>Status</th><th>Meaning</th><th>Body</th></tr>")
    for status, answer in op["responses"].items():
        schema = answer.get("content", {}).get("application/json", {}).get("schema")
        out.append(f"<tr><td>{escape(status)}</td><td>{escape(answer['description'])}</td>"
                   f"<td>{_schema_name(schema)}</td></tr>")
    out.append("</table></section>")
    return "".join(out)


def render(document: dict[str, Any]) -> str:
    info = document["info"]
    parts = ['<!doctype html><html lang="en"><head><meta charset="utf-8">',
             f'<title>{escape(info["title"])}</title><meta name="viewport" content="width=device-width">',
             f"<style>{_STYLE}</style></head><body>",
             f'<h1>{escape(info["title"])}</h1><p>{escape(info["description"])}</p>',
             '<p>Machine-readable: <a href="openapi.json">openapi.json</a> (OpenAPI 3.1).</p>']
    by_tag: dict[str, list[str]] = {}
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            by_tag.setdefault(op["tags"][0], []).append(_operation(method, path, op))
    parts.append("<nav><ul>" + "".join(f'<li><a href="#tag-{escape(t)}">{escape(t)}</a></li>' for t in by_tag)
                 + '<li><a href="#schemas">schemas</a></li></ul></nav>')
    for tag, ops in by_tag.items():
        parts.append(f'<h2 id="tag-{escape(tag)}">{escape(tag)}</h2>' + "".join(ops))
    parts.append('<h2 id="schemas">Schemas</h2>')
    for name, schema in document["components"]["schemas"].items():
        parts.append(f'<h3 id="schema-{escape(name)}">{escape(name)}</h3>'
                     f"<pre>{escape(json.dumps(schema, indent=2))}</pre>")
    parts.append("</body></html>")
    return "".join(parts)
