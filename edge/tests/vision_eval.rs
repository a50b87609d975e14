//! eval-model on the shipped labelled set (tests/data/vision/labelled/): the shipped NanoDet-g at the camera's
//! deployed input (fitted 416×320, whole frame, NMS IoU 0.6) reproduces the counts per image and threshold and
//! the figures stated in docs/EVAL.md, and recommends the threshold stated there. Needs the ONNX Runtime that
//! scripts/setup.sh installs.
// Runs the detector or OpenCV: only in the `vision` build.
#![cfg(feature = "vision")]

use std::path::{Path, PathBuf};

use crowdgrid_edge::vision::detect::Class;
use crowdgrid_edge::vision::eval::labels::LabelSet;
use crowdgrid_edge::vision::eval::sweep::{best_in, InputMode, Sweep};
use crowdgrid_edge::vision::model::ModelConfig;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn sweep(model: &str) -> Sweep {
    Sweep {
        model: ModelConfig {
            manifest: root().join("models/manifest.toml"),
            name: model.into(),
            threads: 2,
            ..ModelConfig::default()
        },
        thresholds: vec![0.35, 0.4, 0.45, 0.5],
        ious: vec![0.6],
        inputs: vec![InputMode::Fitted],
        slicing: vec![None],
    }
}

/// Persons NanoDet-g finds at 0.45 (fitted, IoU 0.6) per image, in the file's order, next to the labels: the
/// figures of docs/EVAL.md.
const AT_045: [(&str, u32, u32); 19] = [
    ("../dog.jpg", 0, 0),
    ("../kite_half.jpg", 10, 3),
    ("../person.jpg", 1, 0),
    ("vtest_000.jpg", 3, 3),
    ("vtest_060.jpg", 6, 6),
    ("../vtest_100.jpg", 7, 7),
    ("vtest_160.jpg", 8, 7),
    ("vtest_220.jpg", 7, 7),
    ("vtest_260.jpg", 7, 8),
    ("../vtest_300.jpg", 6, 6),
    ("vtest_360.jpg", 6, 6),
    ("vtest_420.jpg", 3, 2),
    ("vtest_460.jpg", 3, 2),
    ("../vtest_500.jpg", 4, 4),
    ("vtest_560.jpg", 6, 7),
    ("vtest_620.jpg", 6, 7),
    ("vtest_660.jpg", 6, 6),
    ("../vtest_700.jpg", 8, 8),
    ("vtest_760.jpg", 8, 8),
];

#[test]
fn the_shipped_set_reproduces_the_stated_counts_and_recommendation() {
    let set = LabelSet::load(&root().join("tests/data/vision/labelled/labels.toml")).unwrap();
    assert_eq!(set.file.images.len(), 19);
    let mut ticks = 0;
    let r = sweep("nanodet-g-coco").run(&set, &mut || ticks += 1).unwrap();
    assert_eq!(ticks, 19, "one progress tick per image and pass");
    assert_eq!((r.persons_labelled, r.vehicles_labelled), (105, 35));
    let run = &r.runs[0];
    let at = r.thresholds.iter().position(|t| *t == 0.45).unwrap();
    let got: Vec<(&str, u32, u32)> =
        run.images.iter().map(|i| (i.file.as_str(), i.persons_expected, i.persons[at])).collect();
    assert_eq!(got, AT_045.to_vec());
    // Counts fall as the threshold rises, image by image.
    for i in &run.images {
        assert!(i.persons.windows(2).all(|w| w[1] <= w[0]), "{}: {:?}", i.file, i.persons);
    }
    let p = &run.points[at].person;
    // |7-10| + |0-1| + 1 + 1 + 1 + 1 + 1 + 1 = 14 over 19 images.
    assert!((p.count.mae - 14.0 / 19.0).abs() < 1e-9, "{:?}", p.count);
    assert!((p.count.bias + 8.0 / 19.0).abs() < 1e-9, "{:?}", p.count);
    let m = p.matches.unwrap();
    assert_eq!((m.tp, m.fp, m.fn_), (88, 9, 17), "box matches at IoU 0.5");
    assert!(p.zones.is_some_and(|z| z.n == 32), "16 vtest frames × 2 zones");
    let ap = run.person_ap50.unwrap();
    assert!((0.85..0.95).contains(&ap), "person AP50 {ap}");
    let best = best_in(run, Class::Person).unwrap();
    assert_eq!(best.threshold, 0.45, "the recommended person threshold at the deployed input");
    let at_04 = &run.points[1].person.count;
    assert!(at_04.mae > p.count.mae, "0.40 counts worse here: {} vs {}", at_04.mae, p.count.mae);
}

#[test]
fn int8_counts_within_the_stated_margin_of_fp32() {
    let set = LabelSet::load(&root().join("tests/data/vision/labelled/labels.toml")).unwrap();
    let fp32 = sweep("nanodet-g-coco").run(&set, &mut || {}).unwrap();
    let int8 = sweep("nanodet-g-coco-int8").run(&set, &mut || {}).unwrap();
    let at = fp32.thresholds.iter().position(|t| *t == 0.45).unwrap();
    let (a, b) = (&fp32.runs[0].points[at].person.count, &int8.runs[0].points[at].person.count);
    // docs/EVAL.md: INT8's person count MAE is at most 0.25 worse than fp32's on this set.
    assert!(b.mae <= a.mae + 0.25, "int8 MAE {} vs fp32 {}", b.mae, a.mae);
    let (va, vb) = (&fp32.runs[0].points[at].vehicle.count, &int8.runs[0].points[at].vehicle.count);
    assert!(vb.mae <= va.mae + 0.25, "int8 vehicle MAE {} vs fp32 {}", vb.mae, va.mae);
}
