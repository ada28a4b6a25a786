//! The performance report: one self-contained HTML file (inline SVG, CSS and a few lines of
//! JS; it fetches nothing), written when a [`PerformanceReport`] finishes.
//!
//! It shows the task stream (a lane per CPU thread and GPU stream, a bar per task coloured by
//! its group; hovering names the task and its duration), a table per task group, worker
//! utilisation over time, memory over time (the managed bytes, i.e. the task outputs of known
//! size the scheduler holds, next to process RSS, against the cluster's memory budget), GPU
//! memory and utilisation when the cluster has GPUs, the hardware, and the failures.
//!
//! ```no_run
//! use onebox::prelude::*;
//! let cluster = Cluster::local()?;
//! let total = cluster.performance_report("report.html", || {
//!     let parts: Vec<_> = (0..100u64).map(|i| cluster.delayed(move || i * i).label("square")).collect();
//!     Delayed::join_with(&cluster, parts, |v| v.iter().sum::<u64>()).compute()
//! })??;
//! # Ok::<(), onebox::Error>(())
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::aggregate::{Aggregate, lane_name};
use super::collector::Collector;
use crate::error::{Error, Result};
use crate::hardware::{Hardware, format_bytes};
use crate::{Cluster, Plan};

/// Records a cluster's activity from its start until [`finish`](Self::finish), then writes
/// the HTML report. Dropped without `finish`, it stops recording and writes nothing. See the
/// [module docs](self) and [`Cluster::performance_report`].
#[must_use = "the report is written by `finish`"]
pub struct PerformanceReport {
    path: PathBuf,
    collector: Collector,
    hardware: Hardware,
    plan: Plan,
    capacity: usize,
}

impl PerformanceReport {
    /// Starts recording `cluster`; the report goes to `path` on [`finish`](Self::finish).
    pub fn start(cluster: &Cluster, path: impl AsRef<Path>) -> Result<PerformanceReport> {
        Ok(PerformanceReport {
            path: path.as_ref().to_path_buf(),
            collector: Collector::start(cluster)?,
            hardware: cluster.hardware().clone(),
            plan: cluster.plan().clone(),
            capacity: cluster.threads() + cluster.gpu_count() * cluster.plan().streams_per_gpu,
        })
    }

    /// Stops recording and writes the report; returns what it recorded.
    pub fn finish(self) -> Result<Aggregate> {
        let PerformanceReport {
            path,
            collector,
            hardware,
            plan,
            capacity,
        } = self;
        let agg = collector.finish();
        let html = render(&agg, &hardware, &plan, capacity);
        std::fs::write(&path, html).map_err(|e| Error::io(&path, e))?;
        Ok(agg)
    }
}

impl Cluster {
    /// Runs `f` while recording this cluster's activity, then writes the performance report
    /// to `path` (see [`diagnostics::report`](crate::diagnostics::report)). Returns what `f`
    /// returned; fails only if recording could not start or the file could not be written.
    pub fn performance_report<R>(
        &self,
        path: impl AsRef<Path>,
        f: impl FnOnce() -> R,
    ) -> Result<R> {
        let report = PerformanceReport::start(self, path)?;
        let out = f();
        report.finish()?;
        Ok(out)
    }
}

/// Escapes text for HTML content and attributes.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A duration in seconds, in the unit that reads best.
pub(crate) fn fmt_secs(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}

/// The colours of task groups, in order of their names.
pub(crate) const PALETTE: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7", "#9c755f",
    "#e15759", "#bab0ac",
];

/// Style shared by the report and the dashboard.
pub(crate) const CSS: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}\
table{border-collapse:collapse}td,th{padding:2px 10px;border-bottom:1px solid #ddd;text-align:right}\
td:first-child,th:first-child{text-align:left}svg{background:#fafafa;border:1px solid #ddd}\
rect.task:hover{stroke:#000;stroke-width:1}.swatch{display:inline-block;width:10px;height:10px;margin-right:4px}\
pre{background:#f4f4f4;padding:8px}#info{position:fixed;top:8px;right:8px;background:#fff;\
border:1px solid #999;padding:4px 8px;font-family:monospace}.fail{color:#b00}";

const WIDTH: f64 = 1000.0;
const LANE: f64 = 16.0;
const LABELS: f64 = 110.0;

/// The whole report page.
pub(crate) fn render(agg: &Aggregate, hw: &Hardware, plan: &Plan, capacity: usize) -> String {
    let totals = agg.totals();
    let colours: std::collections::HashMap<&str, &str> = agg
        .groups()
        .enumerate()
        .map(|(i, g)| (g.name.as_str(), PALETTE[i % PALETTE.len()]))
        .collect();
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>onebox performance report</title><style>{CSS}</style></head><body>\
         <h1>onebox performance report</h1><p id=\"summary\">{} tasks ({} failed) in {}, \
         on {} CPU threads and {} GPU(s).</p><div id=\"info\">hover a task</div>",
        totals.ended(),
        totals.failed,
        fmt_secs(agg.span()),
        plan.cpu_threads,
        plan.gpus.len()
    );

    // Task stream.
    h.push_str("<h2>Task stream</h2>");
    let order = agg.lane_order();
    let mut row = vec![0usize; agg.workers().len()];
    for (r, &lane) in order.iter().enumerate() {
        row[lane] = r;
    }
    let span = agg.span().max(1e-9);
    let scale = (WIDTH - LABELS) / span;
    let height = (order.len().max(1) as f64) * LANE + 20.0;
    let _ = write!(
        h,
        "<svg id=\"stream\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\">"
    );
    for (r, &lane) in order.iter().enumerate() {
        let _ = write!(
            h,
            "<text x=\"4\" y=\"{}\" font-size=\"11\">{}</text>",
            r as f64 * LANE + 12.0,
            esc(&lane_name(agg.workers()[lane].worker))
        );
    }
    for b in &agg.bars() {
        let x = LABELS + b.start * scale;
        let w = ((b.end - b.start) * scale).max(0.5);
        let y = row[b.lane] as f64 * LANE + 2.0;
        let fill = colours.get(b.group.as_str()).copied().unwrap_or("#888");
        let stroke = if b.ok {
            ""
        } else {
            " stroke=\"#c00\" stroke-width=\"1.5\""
        };
        let _ = write!(
            h,
            "<rect class=\"task\" data-group=\"{g}\" x=\"{x:.2}\" y=\"{y}\" width=\"{w:.2}\" \
             height=\"{}\" fill=\"{fill}\"{stroke}><title>{k} · {d}{f}</title></rect>",
            LANE - 4.0,
            g = esc(&b.group),
            k = esc(&b.key),
            d = fmt_secs(b.end - b.start),
            f = if b.ok { "" } else { " · failed" }
        );
    }
    axis(&mut h, span, height - 16.0);
    h.push_str("</svg>");
    if agg.bars_dropped() > 0 {
        let _ = write!(
            h,
            "<p>The task stream shows the first {} tasks; {} more ran and are counted in the \
             figures below.</p>",
            agg.bar_count(),
            agg.bars_dropped()
        );
    }

    // Groups.
    h.push_str(
        "<h2>Task groups</h2><table id=\"groups\"><tr><th>group</th><th>submitted</th>\
         <th>ran</th><th>errors</th><th>total time</th><th>mean</th><th>max</th></tr>",
    );
    for g in agg.groups() {
        let colour = colours.get(g.name.as_str()).copied().unwrap_or("#888");
        let _ = write!(
            h,
            "<tr class=\"group\" data-group=\"{n}\"><td><span class=\"swatch\" \
             style=\"background:{colour}\"></span>{n}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td></tr>",
            g.submitted,
            g.ended(),
            g.failed,
            fmt_secs(g.total_s),
            fmt_secs(g.mean_s()),
            fmt_secs(g.max_s),
            n = esc(&g.name),
        );
    }
    h.push_str("</table>");

    // Workers and utilisation.
    h.push_str("<h2>Worker utilisation</h2>");
    let util = agg.utilisation(capacity);
    // A step per bin: flat over the bin, the last one cut at the end of the run.
    let bin = agg.utilisation_bin();
    let points: Vec<(f64, f64)> = util
        .iter()
        .flat_map(|&(t, f)| [(t, f * 100.0), ((t + bin).min(span), f * 100.0)])
        .collect();
    line_chart(
        &mut h,
        "utilisation",
        &[("busy %", &points, "#4e79a7")],
        span,
        100.0,
        "%",
    );
    h.push_str(
        "<table id=\"workers\"><tr><th>worker</th><th>tasks</th><th>busy</th><th>busy %</th></tr>",
    );
    for &lane in &order {
        let w = &agg.workers()[lane];
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td></tr>",
            esc(&w.name),
            w.tasks,
            fmt_secs(w.busy_s),
            100.0 * w.busy_s / span
        );
    }
    h.push_str("</table>");

    // Memory.
    h.push_str("<h2>Memory</h2>");
    let rss: Vec<(f64, f64)> = agg
        .memory()
        .iter()
        .map(|m| (m.t, m.rss as f64 / 1e6))
        .collect();
    let managed: Vec<(f64, f64)> = agg
        .memory()
        .iter()
        .map(|m| (m.t, m.managed as f64 / 1e6))
        .collect();
    let peak = agg.memory().iter().map(|m| m.rss).max().unwrap_or(0);
    let managed_peak = agg.memory().iter().map(|m| m.managed).max().unwrap_or(0);
    let _ = write!(
        h,
        "<p id=\"memory\">Process RSS peaked at {}; managed bytes peaked at \
         <span id=\"managed-peak\" data-bytes=\"{managed_peak}\">{}</span>; the cluster's \
         memory budget is {}. Managed bytes are the finished task outputs the scheduler holds \
         until their consumers take them, for the outputs whose size is known: array blocks \
         (elements times their size), bag partitions (items times the item's size, not what \
         the items own on the heap) and frame partitions (polars' estimate). Outputs of plain \
         delayed tasks carry no size and are not counted; RSS covers everything, including \
         memory that is no longer used but not yet returned to the system.</p>",
        format_bytes(peak),
        format_bytes(managed_peak),
        format_bytes(plan.memory_limit)
    );
    let limit_mb = plan.memory_limit as f64 / 1e6;
    let top = (peak.max(managed_peak) as f64 / 1e6 * 1.25).max(1.0);
    let limit_line: Vec<(f64, f64)> = if limit_mb <= top {
        vec![(0.0, limit_mb), (span, limit_mb)]
    } else {
        Vec::new()
    };
    let budget = if limit_line.is_empty() {
        format!(
            "budget {} (above the chart)",
            format_bytes(plan.memory_limit)
        )
    } else {
        "budget MB".to_string()
    };
    line_chart(
        &mut h,
        "memory-chart",
        &[
            ("RSS MB", &rss, "#59a14f"),
            ("managed MB", &managed, "#4e79a7"),
            (&budget, &limit_line, "#e15759"),
        ],
        span,
        top.max(if limit_line.is_empty() {
            0.0
        } else {
            limit_mb * 1.05
        }),
        "MB",
    );

    // GPUs.
    if !agg.gpu().is_empty() {
        h.push_str("<h2>GPUs</h2>");
        for gpu in 0..plan.gpus.len() {
            let samples: Vec<_> = agg.gpu().iter().filter(|s| s.gpu == gpu).collect();
            let mem: Vec<(f64, f64)> = samples
                .iter()
                .map(|s| {
                    (
                        s.t,
                        100.0 * s.memory_used as f64 / s.memory_total.max(1) as f64,
                    )
                })
                .collect();
            let ut: Vec<(f64, f64)> = samples
                .iter()
                .map(|s| (s.t, s.utilisation as f64))
                .collect();
            let _ = write!(h, "<h3>GPU {gpu}</h3>");
            line_chart(
                &mut h,
                &format!("gpu-{gpu}"),
                &[
                    ("memory %", &mem, "#b07aa1"),
                    ("utilisation %", &ut, "#f28e2b"),
                ],
                span,
                100.0,
                "%",
            );
        }
    }

    // Hardware and failures.
    let _ = write!(
        h,
        "<h2>Hardware</h2><pre id=\"hardware\">{}\n\ncluster  {} CPU threads, {} GPU(s) x {} \
         streams, memory budget {}</pre>",
        esc(&hw.to_string()),
        plan.cpu_threads,
        plan.gpus.len(),
        plan.streams_per_gpu,
        format_bytes(plan.memory_limit)
    );
    h.push_str("<h2>Failures</h2>");
    if agg.failures().is_empty() {
        h.push_str("<p id=\"failures\">No task failed.</p>");
    } else {
        h.push_str("<ol id=\"failures\">");
        for f in agg.failures() {
            let _ = write!(
                h,
                "<li class=\"fail\"><code>{}</code> at {}: {}</li>",
                esc(&f.key),
                fmt_secs(f.at),
                esc(&f.message)
            );
        }
        h.push_str("</ol>");
        if agg.failures_dropped() > 0 {
            let _ = write!(h, "<p>{} more failures.</p>", agg.failures_dropped());
        }
    }
    h.push_str(
        "<script>const info=document.getElementById('info');\
         for(const r of document.querySelectorAll('rect.task')){r.addEventListener('mouseenter',\
         ()=>{info.textContent=r.querySelector('title').textContent;});}</script></body></html>",
    );
    h
}

/// A time axis along the bottom of a chart.
fn axis(h: &mut String, span: f64, y: f64) {
    let scale = (WIDTH - LABELS) / span;
    for i in 0..=5 {
        let t = span * i as f64 / 5.0;
        let _ = write!(
            h,
            "<text x=\"{:.1}\" y=\"{}\" font-size=\"10\" fill=\"#666\">{}</text>",
            (LABELS + t * scale - if i == 5 { 40.0 } else { 0.0 }).max(0.0),
            y + 12.0,
            fmt_secs(t)
        );
    }
}

/// A named series of `(seconds, value)` points and its colour.
type Series<'a> = (&'a str, &'a [(f64, f64)], &'a str);

/// A line chart of `(seconds, value)` series over `span` seconds, values 0 to `top`.
fn line_chart(h: &mut String, id: &str, series: &[Series<'_>], span: f64, top: f64, unit: &str) {
    let height = 140.0;
    let plot = height - 20.0;
    let scale = (WIDTH - LABELS) / span.max(1e-9);
    let top = if top > 0.0 { top } else { 1.0 };
    let _ = write!(
        h,
        "<svg id=\"{id}\" width=\"{WIDTH}\" height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\">\
         <text x=\"4\" y=\"12\" font-size=\"10\">{top:.0} {unit}</text>\
         <text x=\"4\" y=\"{plot}\" font-size=\"10\">0</text>"
    );
    for (i, (name, points, colour)) in series.iter().enumerate() {
        let _ = write!(
            h,
            "<text x=\"4\" y=\"{}\" font-size=\"10\" fill=\"{colour}\">{}</text>",
            40 + 14 * i,
            esc(name)
        );
        if points.is_empty() {
            continue;
        }
        let pts: Vec<String> = points
            .iter()
            .map(|&(t, v)| {
                format!(
                    "{:.1},{:.1}",
                    LABELS + t * scale,
                    plot - (v / top).clamp(0.0, 1.0) * (plot - 4.0)
                )
            })
            .collect();
        let _ = write!(
            h,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" points=\"{}\"/>",
            pts.join(" ")
        );
    }
    axis(h, span, plot);
    h.push_str("</svg>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostics::{Event, TaskEvent, TaskOutcome};
    use crate::graph::Worker;
    use std::time::Duration;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<a href=\"x\">&'ü"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;ü"
        );
        assert_eq!(esc(""), "");
    }

    #[test]
    fn formats_durations() {
        assert_eq!(fmt_secs(2.0), "2.00 s");
        assert_eq!(fmt_secs(0.0125), "12.50 ms");
        assert_eq!(fmt_secs(0.0000125), "12.5 µs");
    }

    #[test]
    fn an_unwritable_path_is_an_io_error_after_the_work_ran() {
        let cluster = Cluster::builder().threads(1).ignore_env().build().unwrap();
        let path = std::env::temp_dir().join("onebox-no-such-dir/ü/report.html");
        let mut ran = false;
        let out = cluster.performance_report(&path, || {
            ran = true;
            cluster.delayed(|| 7).compute()
        });
        assert!(ran);
        assert!(matches!(out, Err(Error::Io { .. })), "{out:?}");
    }

    #[test]
    fn the_closure_form_returns_what_the_closure_returned() {
        let cluster = Cluster::builder().threads(2).ignore_env().build().unwrap();
        let path = std::env::temp_dir().join(format!("onebox-report-{}.html", std::process::id()));
        let value = cluster
            .performance_report(&path, || {
                let parts: Vec<_> = (1..=10u64)
                    .map(|i| cluster.delayed(move || i).label("part"))
                    .collect();
                crate::Delayed::join_with(&cluster, parts, |v| v.iter().sum::<u64>()).compute()
            })
            .unwrap()
            .unwrap();
        assert_eq!(value, 55);
        let html = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(html.matches("<rect class=\"task\"").count(), 11);
        assert!(html.contains("data-group=\"part\""));
    }

    #[test]
    fn renders_one_bar_per_task_and_escapes_labels() {
        let cluster = Cluster::builder().threads(1).ignore_env().build().unwrap();
        let mut agg = Aggregate::new(Duration::ZERO);
        for i in 0..7u64 {
            let label: std::sync::Arc<str> = if i < 3 { "<b>".into() } else { "ok".into() };
            agg.add(&Event::Task(TaskEvent {
                key: crate::TaskKey::new(i, Some(label)),
                worker: Worker::Cpu((i % 2) as usize),
                start: Duration::from_millis(i),
                end: Duration::from_millis(i + 2),
                outcome: if i == 6 {
                    TaskOutcome::Failed("bad <input>".into())
                } else {
                    TaskOutcome::Ok
                },
            }));
        }
        agg.add_memory(Duration::from_millis(3), 1 << 20, 1 << 10);
        let html = render(&agg, cluster.hardware(), cluster.plan(), 2);
        assert_eq!(html.matches("<rect class=\"task\"").count(), 7);
        assert_eq!(html.matches("<tr class=\"group\"").count(), 2);
        assert!(!html.contains("<b>"));
        assert!(html.contains("bad &lt;input&gt;"));
        assert!(!html.contains("http://") && !html.contains("https://"));
        // The memory chart: RSS, managed bytes and the budget, with the managed peak.
        assert!(html.contains("id=\"managed-peak\" data-bytes=\"1024\""));
        let chart = &html[html.find("id=\"memory-chart\"").unwrap()..];
        let chart = &chart[..chart.find("</svg>").unwrap()];
        assert!(chart.contains(">RSS MB<") && chart.contains(">managed MB<"));
        assert!(chart.matches("<polyline").count() >= 2);
    }
}
