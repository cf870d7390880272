"""A small client for Cairn's model gateway, standard library only.

Send predictions, attach business metrics and delayed ground truth to them
by their UUID, and read the aggregates back::

    import cairn_client

    client = cairn_client.Client("http://127.0.0.1:8080")
    answer = client.predict("classifier", {"mean_radius": 19.55, ...})
    client.predict("churn/classifier", ...)   # the model of project `churn`
    client.track_metric("classifier", answer["uuid"], "revenue", 12.5)
    client.track_delayed_metrics("classifier", [{"uuid": answer["uuid"], "label": 1}])
    client.read_metrics("classifier", window="hour")

A model is named ``"NAME"`` (a name one project serves) or
``"PROJECT/NAME"``; a client made with ``project=`` names its project for
bare names.

The module-level functions (``cairn_client.predict(...)``, ...) use a client
for ``$CAIRN_SERVER`` (set for the jobs and applications Cairn runs; default
``http://127.0.0.1:8080``) and ``$CAIRN_KEY`` (an access key, for models that
require one).
"""

import datetime
import json
import os
import urllib.error
import urllib.parse
import urllib.request

__all__ = [
    "CairnError",
    "Client",
    "predict",
    "track_metric",
    "track_metrics",
    "track_delayed_metrics",
    "read_metrics",
]

DEFAULT_SERVER = "http://127.0.0.1:8080"

# Feedback is sent in chunks of this many labels (the server reads bodies up
# to 32 MiB).
FEEDBACK_CHUNK = 10000


class CairnError(Exception):
    """The server answered with an error (``status`` is the HTTP status, 0
    when the server could not be reached)."""

    def __init__(self, message, status=0, body=None):
        super().__init__(message)
        self.status = status
        self.body = body


def _time(value):
    """An RFC 3339 string for a datetime (naive ones are UTC) or a string."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return value.isoformat()
    raise TypeError("expected a datetime or an RFC 3339 string, not %r" % (value,))


def _uuid(value):
    return None if value is None else str(value)


class Client:
    """A connection to ``cairn up`` (its URL) with an optional access key
    (a model's, for predictions, metrics and feedback), an optional API
    token (for the ``/api/v1`` routes; ``$CAIRN_TOKEN``, which Cairn sets
    for the jobs and applications it runs) and an optional project for
    models named without one."""

    def __init__(self, url=None, key=None, timeout=30.0, project=None, token=None):
        self.url = (url or os.environ.get("CAIRN_SERVER") or DEFAULT_SERVER).rstrip("/")
        self.key = key if key is not None else os.environ.get("CAIRN_KEY") or None
        self.token = token if token is not None else os.environ.get("CAIRN_TOKEN") or None
        self.timeout = timeout
        self.project = project

    def __repr__(self):
        if self.project:
            return "Client(url=%r, project=%r)" % (self.url, self.project)
        return "Client(url=%r)" % self.url

    def _request(self, method, path, body=None, content_type="application/json", accept_unknown=False):
        data = None
        headers = {"Accept": "application/json"}
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
            headers["Content-Type"] = content_type
        secret = self.token if path.startswith("/api/") else self.key
        if secret:
            headers["Authorization"] = "Bearer " + secret
        req = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as response:
                return json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as e:
            text = e.read().decode("utf-8", "replace")
            try:
                value = json.loads(text)
            except ValueError:
                value = text
            # Metrics and feedback for UUIDs that are all unknown: a 404 that
            # is an answer (which UUIDs), not a failure of the call.
            if accept_unknown and e.code == 404 and isinstance(value, dict) and "unknownUuids" in value:
                return value
            message = value.get("error") if isinstance(value, dict) else None
            raise CairnError(
                "%s %s: %s (HTTP %d)" % (method, path, message or text, e.code), e.code, value
            ) from None
        except urllib.error.URLError as e:
            raise CairnError(
                "cannot reach cairn at %s (%s); is `cairn up` running?" % (self.url, e.reason)
            ) from None

    def _model(self, model):
        """The route of a model, ``"NAME"`` or ``"PROJECT/NAME"``:
        ``projects/PROJECT/models/NAME`` or ``models/NAME``."""
        project, _, name = model.rpartition("/")
        project = project or self.project
        name = urllib.parse.quote(name, safe="")
        if project:
            return "projects/%s/models/%s" % (urllib.parse.quote(project, safe=""), name)
        return "models/" + name

    def predict(self, model, request):
        """Sends a prediction request (named features, or ``{"instances":
        [...]}``); returns the answer: ``{"response": ..., "uuid": ...,
        "model": {...}}``."""
        return self._request("POST", "/%s/predict" % self._model(model), {"request": request})

    def track_metrics(self, model, uuid, metrics):
        """Attaches business metrics ``{name: number or string}`` to the
        prediction ``uuid`` (``None``: to the model, timed now). Returns
        ``{"recorded": n, "unknownUuids": [...]}``."""
        if not metrics:
            raise ValueError("no metrics to track")
        body = {"metrics": dict(metrics)}
        if uuid is not None:
            body["uuid"] = _uuid(uuid)
        return self._request("POST", "/%s/metrics" % self._model(model), body, accept_unknown=True)

    def track_metric(self, model, uuid, name, value):
        """Attaches one business metric to the prediction ``uuid``."""
        return self.track_metrics(model, uuid, {name: value})

    def track_delayed_metrics(self, model, feedback):
        """Sends ground truth: a list of ``{"uuid": ..., "label": ...}`` (or
        a mapping uuid → label), as JSON lines. Re-sending a UUID replaces
        its label. Returns ``{"matched": n, "replaced": n, "unknownUuids":
        [...]}``."""
        if isinstance(feedback, dict):
            items = [{"uuid": _uuid(u), "label": label} for u, label in feedback.items()]
        else:
            items = [{"uuid": _uuid(f["uuid"]), "label": f["label"]} for f in feedback]
        if not items:
            raise ValueError("no feedback to send")
        total = {"matched": 0, "replaced": 0, "unknownUuids": []}
        for start in range(0, len(items), FEEDBACK_CHUNK):
            chunk = items[start : start + FEEDBACK_CHUNK]
            body = "".join(json.dumps(item) + "\n" for item in chunk).encode("utf-8")
            answer = self._request(
                "POST",
                "/%s/feedback" % self._model(model),
                body,
                content_type="application/x-ndjson",
                accept_unknown=True,
            )
            total["matched"] += answer.get("matched", 0)
            total["replaced"] += answer.get("replaced", 0)
            total["unknownUuids"].extend(answer.get("unknownUuids", []))
        return total

    def read_metrics(self, model, start=None, end=None, window="hour"):
        """The aggregates of a model between ``start`` and ``end`` (datetimes
        or RFC 3339 strings; default the last 24 hours) per ``window``
        (``minute``, ``hour``, ``day`` or a duration such as ``15m``):
        ``{"model", "task", "from", "to", "windowSeconds", "windows": [...]}``,
        each window with ``version``, ``requests``, ``labeled``,
        ``coverage``, ``accuracy``/``precision``/``recall``/``f1`` or
        ``mae``/``rmse``, and ``businessMetrics``."""
        params = {"window": window}
        if start is not None:
            params["from"] = _time(start)
        if end is not None:
            params["to"] = _time(end)
        query = urllib.parse.urlencode(params)
        return self._request("GET", "/api/v1/%s/metrics/aggregate?%s" % (self._model(model), query))


_default = None


def _client():
    global _default
    if _default is None:
        _default = Client()
    return _default


def predict(model, request):
    """:meth:`Client.predict` on ``$CAIRN_SERVER``."""
    return _client().predict(model, request)


def track_metric(model, uuid, name, value):
    """:meth:`Client.track_metric` on ``$CAIRN_SERVER``."""
    return _client().track_metric(model, uuid, name, value)


def track_metrics(model, uuid, metrics):
    """:meth:`Client.track_metrics` on ``$CAIRN_SERVER``."""
    return _client().track_metrics(model, uuid, metrics)


def track_delayed_metrics(model, feedback):
    """:meth:`Client.track_delayed_metrics` on ``$CAIRN_SERVER``."""
    return _client().track_delayed_metrics(model, feedback)


def read_metrics(model, start=None, end=None, window="hour"):
    """:meth:`Client.read_metrics` on ``$CAIRN_SERVER``."""
    return _client().read_metrics(model, start, end, window)
