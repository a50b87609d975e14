"""Makes models/nanodet_g_coco_int8.onnx: NanoDet-g statically quantised to INT8 with ONNX Runtime's
quantisation tool (QOperator format, per-channel INT8 weights, UINT8 activations), calibrated on 16 frames
of vtest.avi letterboxed to 416x320 exactly as the edge feeds a 768x576 camera (`model.fit_input`).
The input's height and width stay free, like nanodet_g_coco_hw.onnx's.

Calibration frames: 30, 80, 130, ..., 780 (every 50th from 30), none of them an evaluation frame
(0, 60, 100, 160, 220, 260, 300, 360, 420, 460, 500, 560, 620, 660, 700, 760). Activation ranges:
Percentile calibration (99.999th percentile of |x|); MinMax and Entropy (ORT's defaults, which here give
MinMax's ranges) flip more borderline persons -- models/README.md has the comparison.

Do not switch to QuantFormat.QDQ: without fold_inf_pad_into_maxpool the same recipe in QDQ runs but loses
every person (the -inf padding's range is infinite). Check any quantised model's counts (--compare) before
trusting its speed.

    python3 -m venv .cache/quant-venv
    .cache/quant-venv/bin/pip install onnxruntime==1.31.1 onnx==1.23.2 "numpy<2.3" opencv-python-headless==4.10.0.84
    .cache/quant-venv/bin/python models/quantize.py             # writes the model, prints its sha256
    .cache/quant-venv/bin/python models/quantize.py --compare --every 5   # fp32 vs int8 counts and ms/frame
    .cache/quant-venv/bin/python models/quantize.py --compare --speed-only   # only ms/frame (on a quiet machine)
Paths default to the repository's (models/nanodet_g_coco_hw.onnx, .cache/data/vtest.avi).
"""
import argparse, hashlib, os, pathlib, statistics, sys, tempfile, time

import cv2
import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

ROOT = pathlib.Path(__file__).resolve().parents[1]
SIZE = 416
MEAN = np.array([103.53, 116.28, 123.675], np.float32)
STD = np.array([57.375, 57.12, 58.395], np.float32)
PERSON, VEHICLE = {0}, {1, 2, 3, 5, 7}
CALIBRATION_FRAMES = list(range(30, 795, 50))  # 16 frames: 30, 80, ..., 780
EVAL_FRAMES = [0, 60, 100, 160, 220, 260, 300, 360, 420, 460, 500, 560, 620, 660, 700, 760]
GOLDEN = ["vtest_100.jpg", "vtest_300.jpg", "vtest_500.jpg", "vtest_700.jpg"]  # tests/data/vision/


def letterbox(frame, size=SIZE, multiple=32):
    """edge/src/vision/detect.rs Letterbox::fit: scale the long side to `size`, centre in the smallest
    multiple-of-32 canvas holding it (416x320 for 768x576), pad 0; BGR, (x - mean) / std, NCHW."""
    h, w = frame.shape[:2]
    scale = min(size / w, size / h)
    nw, nh = min(max(int(round(w * scale)), 1), size), min(max(int(round(h * scale)), 1), size)
    up = lambda v: min((v + multiple - 1) // multiple * multiple, max(size, multiple))
    cw, ch = up(nw), up(nh)
    px, py = (cw - nw) // 2, (ch - nh) // 2
    canvas = np.zeros((ch, cw, 3), np.uint8)
    canvas[py:py + nh, px:px + nw] = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_LINEAR)
    x = ((canvas.astype(np.float32) - MEAN) / STD).transpose(2, 0, 1)[None]
    return np.ascontiguousarray(x)


def read_frames(video, indices):
    cap = cv2.VideoCapture(str(video))
    want, out, i = set(indices), {}, 0
    while want:
        ok, frame = cap.read()
        if not ok:
            raise SystemExit(f"{video} ended at frame {i}; still wanted {sorted(want)}")
        if i in want:
            out[i] = frame
            want.discard(i)
        i += 1
    return [out[i] for i in indices]


class Frames(CalibrationDataReader):
    def __init__(self, name, tensors):
        self.it = iter([{name: t} for t in tensors])

    def get_next(self):
        return next(self.it, None)


def sha256(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def session(model, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])


def decode(outputs, in_h, in_w, person_thr=0.45, vehicle_thr=0.4):
    """bench/vision_python.py's decode for a rectangular input: scores [1,N,80] (sigmoided) and box bins
    [1,N,44] paired by N; the stride is the one whose grid has N cells."""
    boxes = {o.shape[1]: o for o in outputs if o.shape[-1] == 44}
    dets = []
    for sc in (o for o in outputs if o.shape[-1] != 44):
        n = sc.shape[1]
        stride = next(s for s in (8, 16, 32, 64) if (in_h // s) * (in_w // s) == n)
        cols = in_w // stride
        sc, bx = sc[0], boxes[n][0]
        for cls, thr, label in [(c, person_thr, "person") for c in PERSON] + [(c, vehicle_thr, "vehicle") for c in VEHICLE]:
            for cell in np.nonzero(sc[:, cls] >= thr)[0]:
                row, col = divmod(int(cell), cols)
                cx, cy = (col + 0.5) * stride, (row + 0.5) * stride
                b = bx[cell].reshape(4, 11).astype(np.float64)
                e = np.exp(b - b.max(axis=1, keepdims=True))
                d = (e / e.sum(axis=1, keepdims=True)) @ np.arange(11) * stride
                dets.append((label, int(cls), float(sc[cell, cls]), cx - d[0], cy - d[1], cx + d[2], cy + d[3]))
    return dets


def iou(a, b):
    w = max(0.0, min(a[5], b[5]) - max(a[3], b[3]))
    h = max(0.0, min(a[6], b[6]) - max(a[4], b[4]))
    inter = w * h
    union = (a[5] - a[3]) * (a[6] - a[4]) + (b[5] - b[3]) * (b[6] - b[4]) - inter
    return inter / union if union > 0 else 0.0


def nms(dets, thr=0.6):
    """Class-wise (person / vehicle) greedy NMS, as bench/vision_python.py."""
    keep = []
    for d in sorted(dets, key=lambda d: -d[2]):
        if all(k[0] != d[0] or iou(k, d) <= thr for k in keep):
            keep.append(d)
    return keep


def counts(sess, x):
    outs = sess.run(None, {sess.get_inputs()[0].name: x})
    kept = nms(decode(outs, x.shape[2], x.shape[3]))
    return sum(d[0] == "person" for d in kept), sum(d[0] == "vehicle" for d in kept)


def fold_inf_pad_into_maxpool(path):
    """The TF.js graph pads with -inf before its first MaxPool (TF's explicit padding). A -inf tensor has
    no finite range: MinMax calibration warns (the quantiser then pads with the range's minimum, which is
    right for a max) and Percentile/Entropy stop. ONNX MaxPool's own `pads` ignore padded cells, the same
    as -inf padding, so Pad(-inf) -> MaxPool becomes MaxPool(pads): identical fp32 outputs."""
    m = onnx.load(str(path))
    g = m.graph
    init = {i.name: onnx.numpy_helper.to_array(i) for i in g.initializer}
    consumers = lambda t: [n for n in g.node if t in n.input]
    unpadded = lambda n: all((a.name != "pads" or not any(a.ints)) and (a.name != "auto_pad" or a.s == b"NOTSET")
                             for a in n.attribute)
    for pad in [n for n in g.node if n.op_type == "Pad"]:
        mode = next((a.s for a in pad.attribute if a.name == "mode"), b"constant")
        if mode != b"constant" or len(pad.input) < 3 or pad.input[2] not in init or pad.input[1] not in init:
            continue
        value, pads = init[pad.input[2]], [int(v) for v in init[pad.input[1]]]
        pools = consumers(pad.output[0])
        if not (np.isneginf(value).all() and len(pads) == 8 and pads[:2] == [0, 0] and pads[4:6] == [0, 0]
                and pools and all(n.op_type == "MaxPool" and unpadded(n) for n in pools)
                and pad.output[0] not in [o.name for o in g.output]):
            continue
        for pool in pools:
            pool.input[0] = pad.input[0]
            keep = [x for x in pool.attribute if x.name != "pads"]
            del pool.attribute[:]
            pool.attribute.extend(keep)
            pool.attribute.append(onnx.helper.make_attribute("pads", [pads[2], pads[3], pads[6], pads[7]]))
        g.node.remove(pad)
        print(f"folded {pad.name} (-inf pad {pads}) into {[n.name for n in pools]}")
    used = {i for n in g.node for i in n.input}
    for i in [i for i in g.initializer if i.name not in used]:
        g.initializer.remove(i)
    onnx.checker.check_model(m)
    onnx.save(m, str(path))


def quantize(a):
    frames = read_frames(a.video, CALIBRATION_FRAMES)
    tensors = [letterbox(f) for f in frames]
    print(f"calibration: {len(tensors)} frames {CALIBRATION_FRAMES} of {a.video.name}, input {tensors[0].shape}")
    with tempfile.TemporaryDirectory() as tmp:
        pre = pathlib.Path(tmp) / "pre.onnx"
        # The symbolic shape pass cannot follow the free height/width through NanoDet's Resize/Reshape.
        quant_pre_process(str(a.model), str(pre), skip_symbolic_shape=True)
        fold_inf_pad_into_maxpool(pre)
        name = onnx.load(str(pre)).graph.input[0].name
        quantize_static(
            str(pre), str(a.out), Frames(name, tensors),
            quant_format=QuantFormat.QOperator,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=getattr(CalibrationMethod, a.calibration),
            calibration_providers=["CPUExecutionProvider"],
            extra_options={"CalibPercentile": a.percentile} if a.calibration == "Percentile" else {},
        )
    m = onnx.load(str(a.out))
    dims = [d.dim_param or d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
    print(f"input {m.graph.input[0].name} {dims}")
    sess = session(a.out, 1)
    for h, w in ((320, 416), (416, 416)):
        outs = sess.run(None, {sess.get_inputs()[0].name: np.zeros((1, 3, h, w), np.float32)})
        print(f"runs at {w}x{h}: outputs {[list(o.shape) for o in outs]}")
    print(f"{a.out} {a.out.stat().st_size} bytes sha256 {sha256(a.out)}")


def median_ms(sessions, x, runs=20, warmup=5):
    """Median wall and process-CPU ms per run of each session; the sessions take turns so a busy machine
    slows them alike (with 1 thread the CPU time hardly depends on other load)."""
    feeds = [{s.get_inputs()[0].name: x} for s in sessions]
    for s, f in zip(sessions, feeds):
        for _ in range(warmup):
            s.run(None, f)
    wall, cpu = [[] for _ in sessions], [[] for _ in sessions]
    for _ in range(runs):
        for s, f, w, c in zip(sessions, feeds, wall, cpu):
            t0, c0 = time.perf_counter(), time.process_time()
            s.run(None, f)
            w.append((time.perf_counter() - t0) * 1000)
            c.append((time.process_time() - c0) * 1000)
    return [(statistics.median(w), statistics.median(c)) for w, c in zip(wall, cpu)]


def speed(a, x):
    for threads in (1, 2):
        (f_ms, f_cpu), (q_ms, q_cpu) = median_ms([session(a.model, threads), session(a.out, threads)], x)
        print(f"{threads} thread(s), {x.shape[3]}x{x.shape[2]}, median of 20 runs: fp32 {f_ms:.2f} ms, int8 {q_ms:.2f} ms "
              f"({f_ms / q_ms:.2f}x); CPU {f_cpu:.1f} / {q_cpu:.1f} ms; load average {os.getloadavg()[0]:.2f}")


def compare(a):
    if a.speed_only:
        return speed(a, letterbox(read_frames(a.video, [EVAL_FRAMES[0]])[0]))
    fp, q = session(a.model, 1), session(a.out, 1)
    rows = [(f"vtest.avi #{i}", f) for i, f in zip(EVAL_FRAMES, read_frames(a.video, EVAL_FRAMES))]
    rows += [(f"{g}", cv2.imread(str(ROOT / "tests/data/vision" / g))) for g in GOLDEN]
    print("persons/vehicles (person >= 0.45, vehicle >= 0.4, class-wise NMS IoU 0.6)")
    print(f"{'frame':<18} {'416x320 fp32':>12} {'int8':>6}   {'416x416 fp32':>12} {'int8':>6}")
    diff = {320: 0, 416: 0}
    for label, frame in rows:
        cells = []
        for h in (320, 416):
            x = letterbox(frame) if h == 320 else letterbox(frame, SIZE, SIZE)
            (fp_p, fp_v), (q_p, q_v) = counts(fp, x), counts(q, x)
            diff[h] += abs(fp_p - q_p)
            cells.append(f"{fp_p:>10}/{fp_v:<1} {q_p:>4}/{q_v:<1}{' *' if fp_p != q_p else '  '}")
        print(f"{label:<18} " + "  ".join(cells))
    print(f"sum |fp32 - int8 persons| over {len(rows)} frames: {diff[320]} at 416x320, {diff[416]} at 416x416")
    if a.every:
        idx = [i for i in range(0, int(cv2.VideoCapture(str(a.video)).get(cv2.CAP_PROP_FRAME_COUNT)), a.every)
               if i not in CALIBRATION_FRAMES]
        off = absdiff = signed = 0
        for frame in read_frames(a.video, idx):
            x = letterbox(frame)
            d = counts(q, x)[0] - counts(fp, x)[0]
            off, absdiff, signed = off + (d != 0), absdiff + abs(d), signed + d
        print(f"every {a.every}th frame but the calibration ones, {len(idx)} frames at 416x320: persons differ on {off}, "
              f"sum |int8 - fp32| {absdiff}, sum (int8 - fp32) {signed:+d}")
    speed(a, letterbox(rows[0][1]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=pathlib.Path, default=ROOT / "models/nanodet_g_coco_hw.onnx")
    ap.add_argument("--video", type=pathlib.Path, default=ROOT / ".cache/data/vtest.avi")
    ap.add_argument("--out", type=pathlib.Path, default=ROOT / "models/nanodet_g_coco_int8.onnx")
    ap.add_argument("--calibration", choices=["Percentile", "MinMax", "Entropy"], default="Percentile",
                    help="Percentile (99.999, the default) flipped the fewest borderline persons (models/README.md)")
    ap.add_argument("--percentile", type=float, default=99.999, help="for --calibration Percentile")
    ap.add_argument("--compare", action="store_true", help="only compare --model and --out (counts, ms/frame)")
    ap.add_argument("--speed-only", action="store_true", help="with --compare: only the ms/frame")
    ap.add_argument("--every", type=int, default=0, help="with --compare: also count every Nth frame of the video")
    a = ap.parse_args()
    print(f"onnxruntime {ort.__version__}, onnx {onnx.__version__}, numpy {np.__version__}, opencv {cv2.__version__}")
    compare(a) if a.compare else quantize(a)


if __name__ == "__main__":
    sys.exit(main())
