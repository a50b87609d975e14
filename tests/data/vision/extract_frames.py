"""Extracts the golden frames committed in tests/data/vision/ from vtest.avi (Debian opencv-doc) and the
darknet stills, and the extra frames of the hand-labelled count set in tests/data/vision/labelled/ (see its
README.md). Run once by hand after scripts/setup.sh --test:
    .cache/venv/bin/python tests/data/vision/extract_frames.py
"""
import pathlib, cv2

root = pathlib.Path(__file__).resolve().parents[3]
data, out = root / ".cache/data", pathlib.Path(__file__).resolve().parent
labelled = out / "labelled"
labelled.mkdir(exist_ok=True)
cap = cv2.VideoCapture(str(data / "vtest.avi"))
# frame index (0-based, cv2 read order) -> (directory, JPEG quality)
want = {i: (out, 92) for i in (100, 300, 500, 700)}
want.update({i: (labelled, 90) for i in (0, 60, 160, 220, 260, 360, 420, 460, 560, 620, 660, 760)})
i = 0
while want:
    ok, frame = cap.read()
    if not ok:
        raise SystemExit(f"vtest.avi ended at frame {i}")
    if i in want:
        where, quality = want.pop(i)
        cv2.imwrite(str(where / f"vtest_{i:03d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    i += 1
for name in ["person.jpg", "dog.jpg"]:
    (out / name).write_bytes((data / name).read_bytes())
kite = cv2.imread(str(data / "kite.jpg"))
kite = cv2.resize(kite, (kite.shape[1] // 2, kite.shape[0] // 2), interpolation=cv2.INTER_AREA)
cv2.imwrite(str(out / "kite_half.jpg"), kite, [cv2.IMWRITE_JPEG_QUALITY, 90])
