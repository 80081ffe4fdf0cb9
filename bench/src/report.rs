//! The results of a run: samples recorded under a name by the workloads, then turned into
//! rows (value, baseline, ratio, target) printed as a table and as JSON lines.
//!
//! Workloads only record numbers; which number is compared with which lives in one place,
//! the row list built in `main`, so that every row is printed even when its workload
//! failed (the row then says why).

use std::collections::HashMap;
use std::fmt::Write as _;

/// What a row must reach to meet the target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// `value / baseline_value` at least this.
    RatioAtLeast(f64),
    /// `value / baseline_value` at most this (a cost against a cost: times, latencies).
    RatioAtMost(f64),
    /// The value itself at most this (latencies, memory).
    AtMost(f64),
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct RowSpec {
    /// `W1` .. `W7`, `Peer`.
    pub workload: &'static str,
    /// What is measured, with its parameters.
    pub metric: String,
    /// The unit of both values.
    pub unit: &'static str,
    /// The measurement key of the value.
    pub value: String,
    /// What the value is compared with.
    pub baseline: String,
    /// The measurement key of the baseline, when there is one.
    pub baseline_key: Option<String>,
    /// The target, when it sets one.
    pub target: Option<Target>,
}

/// Every sample of a run, by measurement key.
#[derive(Debug, Default)]
pub struct Results {
    samples: HashMap<String, Vec<f64>>,
    /// Failed repetitions: how many, and the first one's reason.
    failures: HashMap<String, (usize, String)>,
}

impl Results {
    /// Adds one repetition's value.
    pub fn record(&mut self, key: &str, value: f64) {
        self.samples.entry(key.to_owned()).or_default().push(value);
    }

    /// Marks one repetition of a measurement as failed; the first reason is kept.
    pub fn fail(&mut self, key: &str, reason: &str) {
        self.failures
            .entry(key.to_owned())
            .or_insert_with(|| (0, reason.to_owned()))
            .0 += 1;
    }

    /// The median of the values recorded (failed repetitions left out), or why there is none.
    pub fn median(&self, key: &str) -> Result<f64, String> {
        match (self.samples.get(key), self.failures.get(key)) {
            (Some(values), _) if !values.is_empty() => Ok(median(values)),
            (_, Some((_, reason))) => Err(reason.clone()),
            _ => Err("not measured".to_owned()),
        }
    }

    /// When some repetitions failed and others did not: what the median stands on.
    pub fn partial(&self, key: &str) -> Option<String> {
        let values = self.samples.get(key).filter(|v| !v.is_empty())?;
        let (failed, reason) = self.failures.get(key)?;
        Some(format!(
            "median of {} repetitions; {failed} failed: {reason}",
            values.len()
        ))
    }
}

/// The median; the mean of the middle two for an even count.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    match (
        sorted.get(mid),
        mid.checked_sub(1).and_then(|i| sorted.get(i)),
    ) {
        (Some(hi), Some(lo)) if sorted.len().is_multiple_of(2) => (hi + lo) / 2.0,
        (Some(hi), _) => *hi,
        _ => f64::NAN,
    }
}

/// One row, evaluated.
#[derive(Debug, Clone)]
pub struct Row {
    /// The spec it came from.
    pub spec: RowSpec,
    /// The median value, or why there is none.
    pub value: Result<f64, String>,
    /// The baseline's median, or why there is none.
    pub baseline_value: Option<Result<f64, String>>,
    /// Failed repetitions behind a median that exists.
    pub notes: Vec<String>,
}

impl Row {
    /// `value / baseline_value`, when both exist.
    pub fn ratio(&self) -> Option<f64> {
        match (&self.value, &self.baseline_value) {
            (Ok(v), Some(Ok(b))) if *b != 0.0 => Some(v / b),
            _ => None,
        }
    }

    /// Whether the target is met; `None` without a target or without numbers.
    pub fn meets_target(&self) -> Option<bool> {
        match self.spec.target? {
            Target::RatioAtLeast(min) => self.ratio().map(|r| r >= min),
            Target::RatioAtMost(max) => self.ratio().map(|r| r <= max),
            Target::AtMost(max) => self.value.as_ref().ok().map(|v| *v <= max),
        }
    }

    /// The JSON line of PROTOCOL-independent shape the issue asks for (plus `error` when
    /// the value or the baseline could not be measured).
    pub fn json(&self) -> serde_json::Value {
        let mut line = serde_json::json!({
            "workload": self.spec.workload,
            "metric": self.spec.metric,
            "value": self.value.as_ref().ok(),
            "unit": self.spec.unit,
            "baseline": self.spec.baseline,
            "baseline_value": self.baseline_value.as_ref().and_then(|b| b.as_ref().ok()),
            "ratio": self.ratio(),
        });
        let errors: Vec<&str> = [
            self.value.as_ref().err(),
            self.baseline_value.as_ref().and_then(|b| b.as_ref().err()),
        ]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
        if let (false, Some(map)) = (errors.is_empty(), line.as_object_mut()) {
            map.insert("error".into(), errors.join("; baseline: ").into());
        }
        if let (false, Some(map)) = (self.notes.is_empty(), line.as_object_mut()) {
            map.insert("note".into(), self.notes.join("; ").into());
        }
        line
    }
}

/// Evaluates every spec against the results.
pub fn rows(specs: Vec<RowSpec>, results: &Results) -> Vec<Row> {
    specs
        .into_iter()
        .map(|spec| {
            let mut notes: Vec<String> = results.partial(&spec.value).into_iter().collect();
            if let Some(note) = spec
                .baseline_key
                .as_deref()
                .and_then(|k| results.partial(k))
            {
                notes.push(format!("baseline: {note}"));
            }
            Row {
                value: results.median(&spec.value),
                baseline_value: spec.baseline_key.as_deref().map(|k| results.median(k)),
                notes,
                spec,
            }
        })
        .collect()
}

fn number(value: f64) -> String {
    if value.abs() >= 1000.0 {
        format!("{value:.0}")
    } else if value.abs() >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.3}")
    }
}

fn target_text(target: Option<Target>) -> String {
    match target {
        Some(Target::RatioAtLeast(min)) => format!("ratio >= {min}"),
        Some(Target::RatioAtMost(max)) => format!("ratio <= {max}"),
        Some(Target::AtMost(max)) => format!("<= {}", number(max)),
        None => String::new(),
    }
}

/// The table, one row per spec, errors written where the number would be.
pub fn table(rows: &[Row]) -> String {
    let header = [
        "workload",
        "metric",
        "value",
        "unit",
        "baseline",
        "baseline value",
        "ratio",
        "target",
        "met",
    ];
    let mut cells: Vec<[String; 9]> = vec![header.map(str::to_owned)];
    // Footnotes, numbered once per distinct text (many rows share one failure).
    let mut notes: Vec<String> = Vec::new();
    let mut footnote = |text: String| -> usize {
        match notes.iter().position(|n| *n == text) {
            Some(i) => i + 1,
            None => {
                notes.push(text);
                notes.len()
            }
        }
    };
    for row in rows {
        let mut show = |r: &Result<f64, String>| match r {
            Ok(v) => number(*v),
            Err(e) => format!("n/a [{}]", footnote(e.clone())),
        };
        let value = show(&row.value);
        let baseline_value = row
            .baseline_value
            .as_ref()
            .map(&mut show)
            .unwrap_or_default();
        cells.push([
            row.spec.workload.to_owned(),
            row.spec.metric.clone(),
            value,
            row.spec.unit.to_owned(),
            row.spec.baseline.clone(),
            baseline_value,
            row.ratio().map(|r| format!("{r:.2}")).unwrap_or_default(),
            target_text(row.spec.target),
            match row.meets_target() {
                Some(true) => "yes".into(),
                Some(false) => "NO".into(),
                None => String::new(),
            } + &row
                .notes
                .iter()
                .map(|n| format!(" [{}]", footnote(n.clone())))
                .collect::<String>(),
        ]);
    }
    let mut widths = [0usize; 9];
    for line in &cells {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for (i, line) in cells.iter().enumerate() {
        out.push('|');
        for (w, cell) in widths.iter().zip(line) {
            let _ = write!(out, " {cell:<w$} |");
        }
        out.push('\n');
        if i == 0 {
            out.push('|');
            for w in widths {
                let _ = write!(out, "{}|", "-".repeat(w + 2));
            }
            out.push('\n');
        }
    }
    for (i, note) in notes.iter().enumerate() {
        let _ = writeln!(out, "[{}] {note}", i + 1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(target: Option<Target>) -> RowSpec {
        RowSpec {
            workload: "W1",
            metric: "m".into(),
            unit: "changes/s",
            value: "v".into(),
            baseline: "raw".into(),
            baseline_key: Some("b".into()),
            target,
        }
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn ratio_and_target_come_from_medians() {
        let mut results = Results::default();
        for v in [10.0, 30.0, 20.0] {
            results.record("v", v);
        }
        results.record("b", 40.0);
        let rows = rows(vec![spec(Some(Target::RatioAtLeast(0.5)))], &results);
        assert_eq!(rows[0].ratio(), Some(0.5));
        assert_eq!(rows[0].meets_target(), Some(true));
        assert_eq!(rows[0].json()["ratio"], 0.5);
        assert!(rows[0].json().get("error").is_none());
    }

    #[test]
    fn a_failure_is_shown_in_place_of_the_number() {
        let mut results = Results::default();
        results.record("v", 1.0);
        results.fail("b", "npm is not installed");
        let rows = rows(vec![spec(None)], &results);
        let table = table(&rows);
        assert!(table.contains("n/a [1]"), "{table}");
        assert!(table.contains("[1] npm is not installed"), "{table}");
        assert_eq!(rows[0].json()["error"], "npm is not installed");
        assert!(rows[0].json()["ratio"].is_null());
    }

    #[test]
    fn a_failed_repetition_leaves_the_median_of_the_others_with_a_note() {
        let mut results = Results::default();
        results.record("v", 1.0);
        results.fail("v", "timed out");
        results.record("v", 3.0);
        results.record("b", 4.0);
        let rows = rows(vec![spec(Some(Target::RatioAtLeast(0.1)))], &results);
        assert_eq!(rows[0].value, Ok(2.0));
        let note = "median of 2 repetitions; 1 failed: timed out";
        assert_eq!(rows[0].json()["note"], note);
        let table = table(&rows);
        assert!(
            table.contains("yes [1]") && table.contains(&format!("[1] {note}")),
            "{table}"
        );
    }
}
