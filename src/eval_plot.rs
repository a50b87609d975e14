//! The eval-model plot (SVG): person count MAE per image against the confidence threshold, one line per
//! combination of input, slicing and NMS IoU, the recommended point marked. Drawn with `plotters`.

use std::path::Path;

use crowdgrid_edge::vision::eval::report::EvalReport;
use plotters::prelude::*;

use crate::eval_cli::run_label;

/// Writes the plot; the error is plotters' message.
pub fn write_svg(r: &EvalReport, path: &Path) -> Result<(), String> {
    draw(r, path).map_err(|e| e.to_string())
}

fn draw(r: &EvalReport, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let (lo, hi) = match (r.thresholds.first(), r.thresholds.last()) {
        (Some(a), Some(b)) if b > a => (f64::from(*a), f64::from(*b)),
        (Some(a), _) => (f64::from(*a) - 0.05, f64::from(*a) + 0.05),
        _ => (0.0, 1.0),
    };
    let ymax =
        r.runs.iter().flat_map(|run| run.points.iter().map(|p| p.person.count.mae)).fold(0.5_f64, f64::max) * 1.1;
    let root = SVGBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let caption = format!("{} on {}: person count error against threshold", r.model, r.set);
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(lo..hi, 0.0..ymax)?;
    chart.configure_mesh().x_desc("confidence threshold").y_desc("person count MAE per image").draw()?;
    for (i, run) in r.runs.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let points = run.points.iter().map(|p| (f64::from(p.threshold), p.person.count.mae));
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(run_label(run))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    if let Some(b) = &r.best_person {
        let at = (f64::from(b.threshold), b.mae);
        chart.draw_series(std::iter::once(Circle::new(at, 6, BLACK.stroke_width(2))))?;
        chart.draw_series(std::iter::once(Text::new(
            format!("recommended {:.2} (MAE {:.2})", b.threshold, b.mae),
            (at.0, at.1 + ymax * 0.04),
            ("sans-serif", 14),
        )))?;
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.85)).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}
