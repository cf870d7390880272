"""Cairn quickstart data-prep job.

Loads scikit-learn's bundled breast-cancer dataset (no network access needed),
keeps four features, and writes train/test splits plus a drift reference set.

Env:
  CAIRN_OUTPUT_DIR  where to write train.csv, test.csv, reference.csv (default ./out)
"""

import csv
import os

from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

# sklearn column name -> snake_case column name used throughout the quickstart
FEATURES = {
    "mean radius": "mean_radius",
    "mean texture": "mean_texture",
    "mean smoothness": "mean_smoothness",
    "worst concavity": "worst_concavity",
}
SEED = 42
TEST_SIZE = 0.2


def write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    print(f"wrote {path} ({len(rows)} rows)")


def main():
    out_dir = os.environ.get("CAIRN_OUTPUT_DIR", "./out")
    os.makedirs(out_dir, exist_ok=True)

    data = load_breast_cancer()
    names = list(data.feature_names)
    idx = [names.index(src) for src in FEATURES]
    X = data.data[:, idx]
    y = data.target
    print(f"loaded breast_cancer: {X.shape[0]} rows, {len(idx)} of {len(names)} features")

    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=TEST_SIZE, random_state=SEED, stratify=y
    )
    print(f"split: {len(y_train)} train / {len(y_test)} test (seed={SEED})")

    cols = list(FEATURES.values())
    fmt = lambda row: [repr(float(v)) for v in row]
    write_csv(
        os.path.join(out_dir, "train.csv"),
        cols + ["label"],
        [fmt(x) + [int(t)] for x, t in zip(X_train, y_train)],
    )
    write_csv(
        os.path.join(out_dir, "test.csv"),
        cols + ["label"],
        [fmt(x) + [int(t)] for x, t in zip(X_test, y_test)],
    )
    write_csv(os.path.join(out_dir, "reference.csv"), cols, [fmt(x) for x in X_train])
    print("prepare: done")


if __name__ == "__main__":
    main()
