"""A straightforward Python pipeline for NanoDet-g (opencv-python + onnxruntime + numpy), the yardstick
for bench/vision.rs and the reference for the detector's golden test (tests/data/vision/reference.py).

    python bench/vision_python.py VIDEO --frames N --threads T [--skip S]
prints one JSON line: {"frames": N, "total_s": ..., "model_s": ..., "fps": ...}
"""
import argparse, json, sys, time

import cv2
import numpy as np
import onnxruntime as ort

SIZE = 416
MEAN = np.array([103.53, 116.28, 123.675], np.float32)
STD = np.array([57.375, 57.12, 58.395], np.float32)
PERSON, VEHICLE = {0}, {1, 2, 3, 5, 7}


def session(model, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def preprocess(frame):
    h, w = frame.shape[:2]
    scale = min(SIZE / w, SIZE / h)
    nw, nh = int(round(w * scale)), int(round(h * scale))
    px, py = (SIZE - nw) // 2, (SIZE - nh) // 2
    canvas = np.zeros((SIZE, SIZE, 3), np.uint8)
    canvas[py:py + nh, px:px + nw] = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_LINEAR)
    x = ((canvas.astype(np.float32) - MEAN) / STD).transpose(2, 0, 1)[None]
    return np.ascontiguousarray(x), (scale, px, py)


def decode(outputs, person_thr=0.45, vehicle_thr=0.4):
    scores = [o for o in outputs if o.shape[-1] != 44]
    boxes = {o.shape[1]: o for o in outputs if o.shape[-1] == 44}
    dets = []
    for sc in scores:
        n = sc.shape[1]
        side = int(round(n ** 0.5))
        stride = SIZE // side
        sc, bx = sc[0], boxes[n][0]
        for cls, thr, label in [(c, person_thr, "person") for c in PERSON] + [(c, vehicle_thr, "vehicle") for c in VEHICLE]:
            cells = np.nonzero(sc[:, cls] >= thr)[0]
            for cell in cells:
                row, col = divmod(int(cell), side)
                cx, cy = (col + 0.5) * stride, (row + 0.5) * stride
                b = bx[cell].reshape(4, 11)
                e = np.exp(b - b.max(axis=1, keepdims=True))
                d = (e / e.sum(axis=1, keepdims=True)) @ np.arange(11, dtype=np.float32) * stride
                dets.append((label, int(cls), float(sc[cell, cls]), cx - d[0], cy - d[1], cx + d[2], cy + d[3]))
    return dets


def iou(a, b):
    w = max(0.0, min(a[5], b[5]) - max(a[3], b[3]))
    h = max(0.0, min(a[6], b[6]) - max(a[4], b[4]))
    inter = w * h
    union = (a[5] - a[3]) * (a[6] - a[4]) + (b[5] - b[3]) * (b[6] - b[4]) - inter
    return inter / union if union > 0 else 0.0


def nms(dets, thr=0.6):
    keep = []
    for d in sorted(dets, key=lambda d: -d[2]):
        if all(k[0] != d[0] or iou(k, d) <= thr for k in keep):
            keep.append(d)
    return keep


def detect(sess, frame):
    x, (scale, px, py) = preprocess(frame)
    outs = sess.run(None, {sess.get_inputs()[0].name: x})
    h, w = frame.shape[:2]
    out = []
    for label, cls, s, x1, y1, x2, y2 in nms(decode(outs)):
        fx = lambda v: float(min(max((v - px) / scale, 0), w))
        fy = lambda v: float(min(max((v - py) / scale, 0), h))
        out.append({"class": label, "raw_class": cls, "score": s, "box": [fx(x1), fy(y1), fx(x2), fy(y2)]})
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("video")
    ap.add_argument("--model", default="models/nanodet_g_coco_hw.onnx")
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=5)
    a = ap.parse_args()
    sess = session(a.model, a.threads)
    cap = cv2.VideoCapture(a.video)
    ok, frame = cap.read()
    for _ in range(a.warmup):
        detect(sess, frame)
    cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
    n, model_s, counts = 0, 0.0, 0
    t0 = time.perf_counter()
    while n < a.frames:
        ok, frame = cap.read()
        if not ok:
            break
        x, meta = preprocess(frame)
        m0 = time.perf_counter()
        outs = sess.run(None, {sess.get_inputs()[0].name: x})
        model_s += time.perf_counter() - m0
        counts += sum(1 for d in nms(decode(outs)) if d[0] == "person")
        n += 1
    total = time.perf_counter() - t0
    print(json.dumps({"frames": n, "total_s": total, "model_s": model_s, "fps": n / total, "persons": counts}))


if __name__ == "__main__":
    sys.exit(main())
