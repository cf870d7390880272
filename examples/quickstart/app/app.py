"""Cairn quickstart app: a tiny standard-library-only dashboard.

Served behind the Cairn gateway at /apps/NAME/; the form posts to the model
endpoint on the same origin at the absolute path /models/classifier/predict.

Env:
  PORT  port to listen on (default 8501)
"""

import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FEATURES = [
    ("mean_radius", 14.0), ("mean_texture", 19.0),
    ("mean_smoothness", 0.096), ("worst_concavity", 0.27),
]
INPUTS = "\n".join(
    f'<label>{n} <input name="{n}" type="number" step="any" value="{v}" required></label>'
    for n, v in FEATURES
)
PAGE = f"""<!doctype html>
<html><head><meta charset="utf-8">
<title>Breast cancer classifier — quickstart app</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 36rem; margin: 2rem auto; }}
label {{ display: block; margin: .5rem 0; }} input {{ float: right; width: 10rem; }}
pre {{ background: #f4f4f4; padding: 1rem; white-space: pre-wrap; }}
</style></head><body>
<h1>Breast cancer classifier — quickstart app</h1>
<form id="f">{INPUTS}
<button type="submit">Predict</button></form>
<pre id="out">Fill in the features and press Predict.</pre>
<script>
document.getElementById("f").addEventListener("submit", async (e) => {{
  e.preventDefault();
  const out = document.getElementById("out");
  const request = {{}};
  for (const [k, v] of new FormData(e.target)) request[k] = parseFloat(v);
  out.textContent = "…";
  try {{
    const r = await fetch("/models/classifier/predict", {{
      method: "POST", headers: {{"Content-Type": "application/json"}},
      body: JSON.stringify({{request}}),
    }});
    const text = await r.text();
    let body = text;
    try {{ body = JSON.stringify(JSON.parse(text), null, 2); }} catch (_) {{}}
    out.textContent = "HTTP " + r.status + "\\n" + body;
  }} catch (err) {{ out.textContent = "request failed: " + err; }}
}});
</script></body></html>
""".encode()


class Handler(BaseHTTPRequestHandler):
    def _send(self, code, body, ctype):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path.startswith("/apps/"):  # tolerate a gateway that keeps the prefix
            path = "/" + path[len("/apps/"):].partition("/")[2]
        if path == "/healthz":
            self._send(200, b"ok", "text/plain; charset=utf-8")
        elif path in ("/", "/index.html"):
            self._send(200, PAGE, "text/html; charset=utf-8")
        else:
            self._send(404, b"not found", "text/plain; charset=utf-8")

    do_HEAD = do_GET


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8501"))
    print(f"quickstart app listening on 0.0.0.0:{port}", flush=True)
    ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()
