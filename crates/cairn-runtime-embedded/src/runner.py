"""Cairn's function-model runner: serves `FILE.py:FUNCTION` over HTTP.

Started by the embedded runtime for `runtime: process` models with
`function:`; needs only the standard library. It listens on 127.0.0.1:$PORT:

    GET  /healthz   -> 200 "ok" once the module is imported
    POST /predict   {"request": ...} -> {"response": FUNCTION(request)}

The function receives the request's JSON value (a dict for named features)
and returns anything JSON-serializable. Exceptions become 500 responses
with the error message, and the traceback goes to the log.
"""

import http.server
import importlib.util
import json
import os
import sys
import traceback


def load(target):
    path, _, name = target.partition(":")
    if not path or not name:
        sys.exit(f"cairn runner: expected FILE.py:FUNCTION, got {target!r}")
    spec = importlib.util.spec_from_file_location("cairn_model", os.path.abspath(path))
    if spec is None or spec.loader is None:
        sys.exit(f"cairn runner: cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    spec.loader.exec_module(module)
    function = getattr(module, name, None)
    if not callable(function):
        sys.exit(f"cairn runner: {path} has no function {name!r}")
    return function


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    function = None

    def log_message(self, format, *args):  # noqa: A002 - quiet access log
        pass

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path in ("/healthz", "/"):
            self.reply(200, "ok")
        else:
            self.reply(404, {"error": "not found"})

    def do_POST(self):
        if self.path != "/predict":
            self.reply(404, {"error": "not found"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError as e:
            self.reply(400, {"error": f"invalid JSON: {e}"})
            return
        request = body.get("request") if isinstance(body, dict) else None
        try:
            result = Handler.function(request)
        except Exception as e:  # the model's error, reported to the caller
            traceback.print_exc()
            sys.stderr.flush()
            self.reply(500, {"error": f"{type(e).__name__}: {e}"})
            return
        self.reply(200, {"response": result})


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: runner.py FILE.py:FUNCTION")
    Handler.function = staticmethod(load(sys.argv[1]))
    port = int(os.environ.get("PORT", "8000"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"cairn runner: serving {sys.argv[1]} on 127.0.0.1:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
