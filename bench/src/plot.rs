//! `--plot DIR`: the run's rows as two SVG charts (plotters, SVG backend only; text is
//! written as SVG text, so no font is loaded and the viewer draws it):
//!
//! - `throughput.svg`: every rate row that has a baseline, as the ratio ours / baseline on
//!   a log scale: a bar from 1 (the baseline) to the ratio, rightwards when faster,
//!   leftwards when slower; green where the target is met, red where it is
//!   missed, grey where none is set; the target as a tick on the bar's line.
//! - `latency.svg`: the latency rows (W4, and the peer's longpoll beside them), p50, p99
//!   and max of each configuration as three bars, in ms on a log scale.
//!
//! A row without a number (failed, skipped) is left out of the charts; the table says why.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::{BenchError, Result};
use crate::report::{Row, Target};

const WIDTH: u32 = 1200;
/// Pixels per bar row (throughput) or per configuration (latency).
const ROW_PX: u32 = 26;
const LATENCY_ROW_PX: u32 = 54;
/// The left margin that holds the labels.
/// The left margin that holds the labels: what the longest needs, within these bounds.
const LABEL_PX: u32 = 640;
const MIN_LABEL_PX: u32 = 200;
/// About the width of one character of the 12 px labels (sans-serif), in pixels.
const CHAR_PX: f64 = 6.2;
const MET: RGBColor = RGBColor(31, 157, 98);
const MISSED: RGBColor = RGBColor(194, 65, 45);
const PLAIN: RGBColor = RGBColor(120, 128, 145);
const STATS: [(&str, RGBColor); 3] = [
    ("p50", RGBColor(79, 91, 213)),
    ("p99", RGBColor(168, 107, 0)),
    ("max", RGBColor(194, 65, 45)),
];

/// Writes both charts into `dir` (created when missing); returns the files written.
pub fn write(dir: &Path, rows: &[Row]) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)
        .map_err(|e| BenchError::io(format!("creating {}", dir.display()), e))?;
    let mut written = Vec::new();
    let bars = throughput_bars(rows);
    if !bars.is_empty() {
        let path = dir.join("throughput.svg");
        throughput(&path, &bars).map_err(|e| chart_error(&path, e))?;
        written.push(path);
    }
    let groups = latency_groups(rows);
    if !groups.is_empty() {
        let path = dir.join("latency.svg");
        latency(&path, &groups).map_err(|e| chart_error(&path, e))?;
        written.push(path);
    }
    Ok(written)
}

fn chart_error(path: &Path, e: impl std::fmt::Display) -> BenchError {
    BenchError::Setup(format!("chart {}: {e}", path.display()))
}

/// One bar of the throughput chart.
struct Bar {
    label: String,
    ratio: f64,
    target: Option<f64>,
    met: Option<bool>,
}

fn is_rate(unit: &str) -> bool {
    unit.ends_with("/s")
}

fn throughput_bars(rows: &[Row]) -> Vec<Bar> {
    rows.iter()
        .filter(|row| is_rate(row.spec.unit))
        .filter_map(|row| {
            let ratio = row.ratio().filter(|r| r.is_finite() && *r > 0.0)?;
            Some(Bar {
                label: format!(
                    "{} · {}  vs  {}",
                    row.spec.workload, row.spec.metric, row.spec.baseline
                ),
                ratio,
                target: match row.spec.target {
                    Some(Target::RatioAtLeast(t)) => Some(t),
                    _ => None,
                },
                met: row.meets_target(),
            })
        })
        .collect()
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// A log range that holds every value in `values`, never narrower than `floor..ceil`,
/// with `room` times the largest on the right for the figure written after a bar.
fn log_bounds(values: impl Iterator<Item = f64>, floor: f64, ceil: f64, room: f64) -> (f64, f64) {
    let (mut lo, mut hi) = (floor, ceil);
    for v in values.filter(|v| v.is_finite() && *v > 0.0) {
        lo = lo.min(v / 1.5);
        hi = hi.max(v * room);
    }
    (lo, hi)
}

/// The left margin the longest of `labels` needs.
fn label_px<'a>(labels: impl Iterator<Item = &'a str>) -> u32 {
    let longest = labels.map(|l| l.chars().count()).max().unwrap_or(0);
    ((longest as f64 * CHAR_PX) as u32 + 24).clamp(MIN_LABEL_PX, LABEL_PX)
}

fn label(
    root: &Area<'_>,
    text: &str,
    at: (i32, i32),
    size: u32,
    color: &RGBColor,
) -> Result<(), String> {
    let style = TextStyle::from(("sans-serif", size).into_font())
        .color(color)
        .pos(Pos::new(HPos::Right, VPos::Center));
    root.draw(&Text::new(text.to_owned(), at, style))
        .map_err(|e| e.to_string())
}

fn throughput(path: &Path, bars: &[Bar]) -> Result<(), String> {
    let height = 110 + ROW_PX * bars.len() as u32;
    let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (lo, hi) = log_bounds(
        bars.iter()
            .flat_map(|b| [Some(b.ratio), b.target])
            .flatten(),
        0.1,
        10.0,
        2.0,
    );
    let n = bars.len() as f64;
    let left = label_px(bars.iter().map(|b| b.label.as_str()));
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Throughput: ours / baseline, same run (log scale; 1 = the baseline)",
            ("sans-serif", 20),
        )
        .margin(14)
        .margin_left(left)
        .x_label_area_size(34)
        .build_cartesian_2d((lo..hi).log_scale(), 0.0..n)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_desc("ratio")
        .x_label_formatter(&|v| format!("{v}×"))
        .light_line_style(RGBColor(236, 238, 244))
        .draw()
        .map_err(|e| e.to_string())?;
    // Top to bottom in table order.
    let y = |i: usize| n - i as f64 - 1.0;
    for (i, bar) in bars.iter().enumerate() {
        let color = match bar.met {
            Some(true) => MET,
            Some(false) => MISSED,
            None => PLAIN,
        };
        let top = y(i) + 0.8;
        let bottom = y(i) + 0.2;
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(bar.ratio.min(1.0), bottom), (bar.ratio.max(1.0), top)],
                color.mix(0.85).filled(),
            )))
            .map_err(|e| e.to_string())?;
        if let Some(target) = bar.target {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(target, y(i) + 0.05), (target, y(i) + 0.95)],
                    BLACK.stroke_width(2),
                )))
                .map_err(|e| e.to_string())?;
        }
        // The figure beyond the bar's far end.
        let (x, py) = chart.backend_coord(&(bar.ratio, y(i) + 0.5));
        let (anchor, dx) = if bar.ratio >= 1.0 {
            (HPos::Left, 5)
        } else {
            (HPos::Right, -5)
        };
        let value = TextStyle::from(("sans-serif", 12).into_font())
            .color(&BLACK)
            .pos(Pos::new(anchor, VPos::Center));
        root.draw(&Text::new(format!("{:.2}", bar.ratio), (x + dx, py), value))
            .map_err(|e| e.to_string())?;
        let (edge, _) = chart.backend_coord(&(lo, 0.0));
        label(&root, &bar.label, (edge - 8, py), 12, &BLACK)?;
    }
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(1.0, 0.0), (1.0, n)],
            BLACK.mix(0.6).stroke_width(1),
        )))
        .map_err(|e| e.to_string())?;
    let legend = TextStyle::from(("sans-serif", 12).into_font()).color(&PLAIN);
    root.draw(&Text::new(
        "green: target met · red: missed · grey: no target · black tick: the target ratio",
        (left as i32, height as i32 - 14),
        legend,
    ))
    .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

/// One configuration of the latency chart: p50, p99 and max in ms.
struct LatencyGroup {
    label: String,
    values: [Option<f64>; 3],
}

/// The latency rows grouped by configuration (the metric without its statistic), ours
/// then the baseline's beside it when the row has one.
fn latency_groups(rows: &[Row]) -> Vec<LatencyGroup> {
    let mut groups: Vec<LatencyGroup> = Vec::new();
    let mut add = |label: String, stat: usize, value: Option<f64>| match groups
        .iter_mut()
        .find(|g| g.label == label)
    {
        Some(group) => group.values[stat] = value,
        None => {
            let mut values = [None; 3];
            values[stat] = value;
            groups.push(LatencyGroup { label, values });
        }
    };
    for row in rows.iter().filter(|r| r.spec.unit == "ms") {
        let metric = &row.spec.metric;
        let Some(stat) = STATS.iter().position(|(name, _)| {
            metric.contains(&format!(" {name},")) || metric.contains(&format!(" {name} "))
        }) else {
            continue;
        };
        let name = STATS[stat].0;
        let config = metric.replacen(&format!(" {name}"), "", 1);
        add(
            format!("{} · {config}", row.spec.workload),
            stat,
            row.value.as_ref().ok().copied(),
        );
        if let Some(Ok(baseline)) = &row.baseline_value {
            // The baseline at the same rate: "…, 20 pushes/s" from ours. It is measured
            // once per rate, so both durabilities' rows name the same bars.
            let base = row.spec.baseline.replacen(&format!(", {name}"), "", 1);
            let rate = config.split(", ").nth(1).unwrap_or_default();
            add(format!("{base}, {rate}"), stat, Some(*baseline));
        }
    }
    groups.retain(|g| g.values.iter().any(|v| v.is_some_and(|v| v > 0.0)));
    groups
}

fn latency(path: &Path, groups: &[LatencyGroup]) -> Result<(), String> {
    let height = 120 + LATENCY_ROW_PX * groups.len() as u32;
    let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (lo, hi) = log_bounds(
        groups.iter().flat_map(|g| g.values).flatten(),
        0.1,
        100.0,
        6.0,
    );
    let n = groups.len() as f64;
    let left = label_px(groups.iter().map(|g| g.label.as_str()));
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Latency: push to delivery, p50 / p99 / max (ms, log scale)",
            ("sans-serif", 20),
        )
        .margin(14)
        .margin_left(left)
        .x_label_area_size(34)
        .build_cartesian_2d((lo..hi).log_scale(), 0.0..n)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_desc("ms")
        .light_line_style(RGBColor(236, 238, 244))
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, group) in groups.iter().enumerate() {
        let base = n - i as f64 - 1.0;
        for (s, (name, color)) in STATS.iter().enumerate() {
            let Some(value) = group.values[s].filter(|v| *v > 0.0) else {
                continue;
            };
            let bottom = base + 0.72 - 0.24 * s as f64;
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(lo, bottom - 0.2), (value, bottom)],
                    color.filled(),
                )))
                .map_err(|e| e.to_string())?;
            let (x, py) = chart.backend_coord(&(value, bottom - 0.1));
            let text = TextStyle::from(("sans-serif", 11).into_font())
                .color(color)
                .pos(Pos::new(HPos::Left, VPos::Center));
            root.draw(&Text::new(
                format!("{name} {}", ms(value)),
                (x + 4, py),
                text,
            ))
            .map_err(|e| e.to_string())?;
        }
        let (edge, py) = chart.backend_coord(&(lo, base + 0.5));
        label(&root, &group.label, (edge - 8, py), 12, &BLACK)?;
    }
    root.present().map_err(|e| e.to_string())
}

/// `0.42 ms`, `17.5 ms`, `1162 ms`.
fn ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2} ms")
    } else if v < 100.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.0} ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::RowSpec;

    fn row(
        workload: &'static str,
        metric: &str,
        unit: &'static str,
        value: f64,
        baseline: Option<f64>,
    ) -> Row {
        Row {
            spec: RowSpec {
                workload,
                metric: metric.into(),
                unit,
                value: String::new(),
                baseline: "pouchdb-server _changes longpoll, p50".into(),
                baseline_key: baseline.map(|_| String::new()),
                target: Some(Target::RatioAtLeast(0.5)),
            },
            value: Ok(value),
            baseline_value: baseline.map(Ok),
            notes: Vec::new(),
        }
    }

    #[test]
    fn both_charts_are_written_as_svg_with_every_row() {
        let dir = tempfile::tempdir().unwrap();
        let rows = vec![
            row(
                "W1",
                "batched push, msgpack, full",
                "changes/s",
                30000.0,
                Some(70000.0),
            ),
            row(
                "W2",
                "single-change pushes, 1 client, full",
                "changes/s",
                900.0,
                Some(450.0),
            ),
            row(
                "W4",
                "push-to-delivery p50, 20 pushes/s, 1 subscriber, full",
                "ms",
                0.8,
                Some(4.3),
            ),
            row(
                "W4",
                "push-to-delivery p99, 20 pushes/s, 1 subscriber, full",
                "ms",
                2.4,
                None,
            ),
            row(
                "W4",
                "push-to-delivery max, 20 pushes/s, 1 subscriber, full",
                "ms",
                9.0,
                None,
            ),
        ];
        let files = write(dir.path(), &rows).unwrap();
        assert_eq!(files.len(), 2);
        let throughput = std::fs::read_to_string(dir.path().join("throughput.svg")).unwrap();
        assert!(throughput.starts_with("<svg"), "{throughput}");
        assert!(throughput.contains("batched push, msgpack, full"));
        assert!(throughput.contains("0.43") && throughput.contains("2.00"));
        let latency = std::fs::read_to_string(dir.path().join("latency.svg")).unwrap();
        assert!(
            latency.contains("W4 · push-to-delivery, 20 pushes/s, 1 subscriber, full"),
            "{latency}"
        );
        assert!(latency.contains("p99 2.40 ms"), "{latency}");
        assert!(
            latency.contains("pouchdb-server _changes longpoll, 20 pushes/s"),
            "{latency}"
        );
    }
}
