"""Writes tests/data/vision/reference.json: what the Python onnxruntime pipeline (bench/vision_python.py)
finds in each golden image, and the raw NanoDet outputs for a synthetic input tensor. The Rust detector is
checked against it (edge/tests/vision_golden.rs). Run after scripts/setup.sh --test:
    .cache/venv/bin/python tests/data/vision/reference.py
"""
import json, pathlib, sys

import cv2
import numpy as np

here = pathlib.Path(__file__).resolve().parent
root = here.parents[2]
sys.path.insert(0, str(root / "bench"))
import vision_python as vp  # noqa: E402

sess = vp.session(str(root / "models/nanodet_g_coco_hw.onnx"), 1)
images = {}
for p in sorted(here.glob("*.jpg")):
    images[p.name] = vp.detect(sess, cv2.imread(str(p)))

# Synthetic input: x[c, y, x] = (((c * 7 + y * 3 + x) % 255) - 128) / 64.
c, y, x = np.meshgrid(np.arange(3), np.arange(416), np.arange(416), indexing="ij")
t = ((((c * 7 + y * 3 + x) % 255) - 128) / 64).astype(np.float32)[None]
outs = sess.run(None, {sess.get_inputs()[0].name: t})
raw = {}
for o, meta in zip(outs, sess.get_outputs()):
    flat = o.reshape(-1)
    raw[meta.name] = {"shape": list(o.shape), "sum": float(flat.astype(np.float64).sum()), "head": [float(v) for v in flat[:16]]}
json.dump({"images": images, "synthetic": raw}, open(here / "reference.json", "w"), indent=1)
for k, v in images.items():
    print(k, "persons", sum(d["class"] == "person" for d in v), "vehicles", sum(d["class"] == "vehicle" for d in v))
