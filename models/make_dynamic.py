"""Makes the height and width of a fully convolutional detector's input symbolic, so ONNX Runtime runs it
on any stride-aligned rectangle (the edge letterboxes a 4:3 camera to 416x320 instead of padding to
416x416: 23 % less work, same weights). Nothing else changes: every Reshape of NanoDet-g already uses -1
and every Resize uses scales, so the graph computes the same outputs at 416x416 (tested in
edge/tests/vision_golden.rs against the original's numbers).

    pip install onnx==1.23.*
    python models/make_dynamic.py nanodet_g_coco.onnx models/nanodet_g_coco_hw.onnx
"""
import sys

import onnx

src, dst = sys.argv[1:3]
m = onnx.load(src)
g = m.graph
dims = g.input[0].type.tensor_type.shape.dim
for i, name in ((2, "height"), (3, "width")):
    dims[i].ClearField("dim_value")
    dims[i].dim_param = name
# Intermediate shapes were inferred for 416x416; ONNX Runtime re-infers them per input shape.
del g.value_info[:]
for o in g.output:
    d = o.type.tensor_type.shape.dim
    d[1].ClearField("dim_value")
    d[1].dim_param = "cells"
onnx.checker.check_model(m)
onnx.save(m, dst)
