"""Cairn quickstart training job.

Trains StandardScaler + LogisticRegression on the prepared data and exports
the fitted pipeline to ONNX. Under `cairn up` the run is an MLflow run:
Cairn sets MLFLOW_TRACKING_URI, MLFLOW_RUN_ID and a token, and the job's
params (C) are already its parameters; this script logs the cross-validation
score of each fold, the test accuracy and the ONNX model. Elsewhere it runs
without tracking.

Env:
  CAIRN_INPUT_DIR   where train.csv / test.csv live (default ./out)
  CAIRN_OUTPUT_DIR  where model.onnx / metrics.json are written (default ./out)
  CAIRN_PARAM_C     inverse regularisation strength C (default 1.0)

ONNX signature:
  input          "input"          float32 [N, 4]
                 (mean_radius, mean_texture, mean_smoothness, worst_concavity)
  outputs        "label"          int64   [N]
                 "probabilities"  float32 [N, 2]
"""

import contextlib
import csv
import json
import os

import mlflow
import numpy as np
import onnx
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

FEATURES = ["mean_radius", "mean_texture", "mean_smoothness", "worst_concavity"]
TARGET_OPSET = 17


def read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    X = np.array([[float(r[c]) for c in FEATURES] for r in rows], dtype=np.float32)
    y = np.array([int(r["label"]) for r in rows], dtype=np.int64)
    print(f"read {path} ({len(rows)} rows)")
    return X, y


def main():
    in_dir = os.environ.get("CAIRN_INPUT_DIR", "./out")
    out_dir = os.environ.get("CAIRN_OUTPUT_DIR", "./out")
    c = float(os.environ.get("CAIRN_PARAM_C", "1.0"))
    os.makedirs(out_dir, exist_ok=True)

    X_train, y_train = read_csv(os.path.join(in_dir, "train.csv"))
    X_test, y_test = read_csv(os.path.join(in_dir, "test.csv"))

    model = Pipeline(
        [
            ("scaler", StandardScaler()),
            ("classifier", LogisticRegression(C=c, max_iter=1000)),
        ]
    )
    tracked = "MLFLOW_TRACKING_URI" in os.environ
    with mlflow.start_run() if tracked else contextlib.nullcontext():
        folds = cross_val_score(model, X_train, y_train, cv=5)
        model.fit(X_train, y_train)
        accuracy = float(accuracy_score(y_test, model.predict(X_test)))
        print(f"trained LogisticRegression(C={c}): test accuracy = {accuracy:.4f}")
        if tracked:
            mlflow.log_params({"n_train": len(y_train), "n_test": len(y_test), "features": len(FEATURES)})
            for fold, score in enumerate(folds):
                mlflow.log_metric("cv_accuracy", float(score), step=fold)
            mlflow.log_metric("accuracy", accuracy)
        export(model, out_dir, accuracy, c, len(y_train), len(y_test))
        if tracked:
            mlflow.log_artifact(os.path.join(out_dir, "model.onnx"))


def export(model, out_dir, accuracy, c, n_train, n_test):
    """Writes model.onnx and metrics.json into out_dir."""
    onx = convert_sklearn(
        model,
        initial_types=[("input", FloatTensorType([None, len(FEATURES)]))],
        # zipmap=False keeps probabilities as a plain [N, 2] float tensor.
        options={LogisticRegression: {"zipmap": False}},
        target_opset=TARGET_OPSET,
    )
    # skl2onnx names the outputs output_label / output_probability; give them
    # the names the Cairn serving config expects.
    renames = {"output_label": "label", "output_probability": "probabilities"}
    for node in onx.graph.node:
        node.output[:] = [renames.get(o, o) for o in node.output]
    for out in onx.graph.output:
        out.name = renames.get(out.name, out.name)
    # Some skl2onnx/onnx combinations emit the default-domain opset import
    # twice; keep one entry per domain so strict loaders accept the file.
    seen = {}
    for imp in onx.opset_import:
        seen[imp.domain] = max(seen.get(imp.domain, 0), imp.version)
    del onx.opset_import[:]
    for domain, version in seen.items():
        onx.opset_import.add(domain=domain, version=version)
    # skl2onnx names the graph with a random uuid; fix it so reruns are byte-identical.
    onx.graph.name = "cairn_quickstart_classifier"
    onnx.checker.check_model(onx, full_check=True)

    model_path = os.path.join(out_dir, "model.onnx")
    with open(model_path, "wb") as f:
        f.write(onx.SerializeToString())
    print(f"wrote {model_path} ({os.path.getsize(model_path)} bytes, opset {TARGET_OPSET})")

    metrics = {"accuracy": accuracy, "C": c, "n_train": n_train, "n_test": n_test}
    metrics_path = os.path.join(out_dir, "metrics.json")
    with open(metrics_path, "w") as f:
        json.dump(metrics, f, indent=2)
        f.write("\n")
    print(f"wrote {metrics_path}")


if __name__ == "__main__":
    main()
