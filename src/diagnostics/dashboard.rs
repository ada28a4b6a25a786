//! The live dashboard: a web page that follows a running cluster (progress per task group,
//! the recent task stream, workers, memory, GPUs), and its JSON endpoint `/api/status`.
//!
//! It is off by default. Start it with [`ClusterBuilder::dashboard`](crate::ClusterBuilder::dashboard)
//! or, on a running cluster, [`Cluster::dashboard`]; it serves until the cluster (or the
//! returned [`Dashboard`]) is dropped. A bare port (`"8787"`) binds to loopback: only this
//! machine can see the page unless an address says otherwise (`"0.0.0.0:8787"`).
//!
//! Unlike a dashboard that runs inside the scheduler, nothing here can slow the scheduler
//! down: the page is served by a single-threaded runtime on its own thread, from figures a
//! collector thread aggregates out of the event stream. A request reads a snapshot; the
//! scheduler never waits for the page.
//!
//! ```no_run
//! use onebox::prelude::*;
//! let cluster = Cluster::builder().dashboard("127.0.0.1:8787").build()?;
//! println!("dashboard at {}", cluster.dashboard_url().unwrap_or_default());
//! # Ok::<(), onebox::Error>(())
//! ```

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::thread::JoinHandle;

use axum::Router;
use axum::extract::State;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use serde::Serialize;

use super::aggregate::{Bar, Failure, GpuSample, GroupStats, MemorySample, WorkerStats};
use super::collector::{Collector, Shared, process_rss};
use crate::error::{Error, Result};
use crate::graph::lock_unpoisoned as lock;
use crate::hardware::Hardware;
use crate::{Cluster, Plan};

/// A running dashboard server; it stops when dropped.
pub struct Dashboard {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    collector: Option<Collector>,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard")
            .field("addr", &self.addr)
            .finish()
    }
}

/// What every snapshot repeats: the machine and the plan.
struct Info {
    hardware: Hardware,
    plan: Plan,
    capacity: usize,
}

struct AppState {
    shared: Arc<Shared>,
    info: Info,
}

/// Resolves `addr`: a bare port means loopback.
fn resolve(addr: &str) -> Result<SocketAddr> {
    let text = addr.trim();
    let port_only = text.trim_start_matches(':');
    let full = if !port_only.is_empty() && port_only.bytes().all(|b| b.is_ascii_digit()) {
        format!("127.0.0.1:{port_only}")
    } else {
        text.to_string()
    };
    full.to_socket_addrs()
        .map_err(|e| Error::config("dashboard address", addr, e.to_string()))?
        .next()
        .ok_or_else(|| Error::config("dashboard address", addr, "it names no address"))
}

impl Dashboard {
    /// Serves `cluster`'s dashboard on `addr` (`"127.0.0.1:8787"`, `"8787"` for loopback,
    /// port 0 for any free port).
    pub fn start(cluster: &Cluster, addr: &str) -> Result<Dashboard> {
        let sock = resolve(addr)?;
        let listener = std::net::TcpListener::bind(sock)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|e| Error::config("dashboard address", addr, e.to_string()))?;
        let local = listener
            .local_addr()
            .map_err(|e| Error::config("dashboard address", addr, e.to_string()))?;
        let collector = Collector::start(cluster)?;
        let state = Arc::new(AppState {
            shared: collector.shared().clone(),
            info: Info {
                hardware: cluster.hardware().clone(),
                plan: cluster.plan().clone(),
                capacity: cluster.threads() + cluster.gpu_count() * cluster.plan().streams_per_gpu,
            },
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| Error::Invalid(format!("the dashboard could not start: {e}")))?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("onebox-dashboard".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    let app = Router::new()
                        .route("/", get(page))
                        .route("/api/status", get(status))
                        .with_state(state);
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            let _ = rx.await;
                        })
                        .await;
                });
            })
            .map_err(|e| Error::Invalid(format!("the dashboard could not start: {e}")))?;
        Ok(Dashboard {
            addr: local,
            shutdown: Some(tx),
            thread: Some(thread),
            collector: Some(collector),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The page's URL.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            // Graceful shutdown waits for open requests; a client that keeps one open does
            // not hold the cluster's drop for long: the thread is left to end by itself.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
            while !t.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
        drop(self.collector.take());
    }
}

impl Cluster {
    /// Starts a dashboard for this running cluster on `addr` (see
    /// [`diagnostics::dashboard`](crate::diagnostics::dashboard)); it serves until the
    /// returned guard is dropped.
    pub fn dashboard(&self, addr: &str) -> Result<Dashboard> {
        Dashboard::start(self, addr)
    }

    /// The URL of the dashboard started by
    /// [`ClusterBuilder::dashboard`](crate::ClusterBuilder::dashboard), if any.
    pub fn dashboard_url(&self) -> Option<String> {
        self.inner().dashboard.get().map(Dashboard::url)
    }
}

/// A task group with its derived figures, as `/api/status` shows it.
#[derive(Serialize)]
struct GroupView {
    #[serde(flatten)]
    stats: GroupStats,
    ended: u64,
    mean_s: f64,
}

impl From<GroupStats> for GroupView {
    fn from(stats: GroupStats) -> Self {
        GroupView {
            ended: stats.ended(),
            mean_s: stats.mean_s(),
            stats,
        }
    }
}

/// The JSON document of `/api/status`.
#[derive(Serialize)]
struct Status<'a> {
    /// Seconds since the dashboard started.
    elapsed_s: f64,
    threads: usize,
    gpus: usize,
    memory_limit: u64,
    rss: Option<u64>,
    /// The cluster's managed bytes (task outputs of known size the scheduler holds).
    managed: u64,
    totals: GroupView,
    groups: Vec<GroupView>,
    workers: Vec<WorkerStats>,
    /// Recent task bars: `lane` indexes `workers`.
    recent: Vec<Bar>,
    utilisation: Vec<(f64, f64)>,
    memory: Vec<MemorySample>,
    gpu: Vec<GpuSample>,
    failures: Vec<Failure>,
    hardware: &'a Hardware,
    plan: &'a Plan,
}

async fn status(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let doc = {
        let rss = process_rss();
        let managed = state.shared.managed_bytes();
        let at = state.shared.now();
        let mut agg = lock(&state.shared.aggregate);
        agg.close_at(at);
        let memory = agg.memory();
        let gpus = state.info.plan.gpus.len();
        let doc = Status {
            elapsed_s: agg.span(),
            threads: state.info.plan.cpu_threads,
            gpus,
            memory_limit: state.info.plan.memory_limit,
            rss,
            managed,
            totals: agg.totals().into(),
            groups: agg.groups().cloned().map(GroupView::from).collect(),
            workers: agg.workers().to_vec(),
            recent: agg.recent_bars(),
            utilisation: agg.utilisation(state.info.capacity),
            memory: memory[memory.len().saturating_sub(200)..].to_vec(),
            gpu: agg.gpu()[agg.gpu().len().saturating_sub(gpus)..].to_vec(),
            failures: agg.failures().iter().rev().take(20).cloned().collect(),
            hardware: &state.info.hardware,
            plan: &state.info.plan,
        };
        drop(agg);
        doc
    };
    match serde_json::to_string(&doc) {
        Ok(json) => ([("content-type", "application/json")], json).into_response(),
        Err(e) => (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("status could not be encoded: {e}"),
        )
            .into_response(),
    }
}

async fn page() -> Html<String> {
    Html(format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>onebox dashboard</title><style>{}{}</style></head><body>{}<script>{}</script>\
         </body></html>",
        super::report::CSS,
        PAGE_CSS,
        PAGE_BODY,
        PAGE_JS.replace("PALETTE", &format!("{:?}", super::report::PALETTE)),
    ))
}

const PAGE_CSS: &str = ".bar{background:#eee;width:400px;height:14px;display:inline-block;\
vertical-align:middle}.bar>div{background:#59a14f;height:100%}.row{margin:3px 0}\
.row .name{display:inline-block;width:160px}.row .count{margin-left:8px;font-family:monospace}";

const PAGE_BODY: &str = "<h1>onebox dashboard</h1><p id=\"summary\">connecting…</p>\
<h2>Progress</h2><div id=\"progress\"></div>\
<h2>Task stream (recent)</h2><svg id=\"stream\" width=\"1000\" height=\"40\"></svg>\
<h2>Workers</h2><table id=\"workers\"></table>\
<h2>Memory</h2><p id=\"memory\"></p><h2>GPUs</h2><p id=\"gpus\"></p>\
<h2>Failures</h2><ol id=\"failures\"></ol>";

const PAGE_JS: &str = r##"
const palette = PALETTE;
const esc = s => String(s).replace(/[&<>"']/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c]));
const mb = b => b >= 1e10 ? (b / 2 ** 30).toFixed(1) + ' GiB' : (b / 2 ** 20).toFixed(1) + ' MiB';
const secs = s => s >= 1 ? s.toFixed(2) + ' s' : (s * 1e3).toFixed(2) + ' ms';
function draw(st) {
  const t = st.totals;
  document.getElementById('summary').textContent =
    `${t.ended} of ${t.submitted} tasks done (${t.failed} failed) after ${secs(st.elapsed_s)}, ` +
    `on ${st.threads} CPU threads and ${st.gpus} GPU(s).`;
  const colour = {};
  st.groups.forEach((g, i) => colour[g.name] = palette[i % palette.length]);
  document.getElementById('progress').innerHTML = st.groups.map(g => {
    const pct = g.submitted ? Math.min(100, 100 * g.ended / g.submitted) : 100;
    return `<div class="row group" data-group="${esc(g.name)}"><span class="name">${esc(g.name)}</span>` +
      `<span class="bar"><div style="width:${pct}%;background:${colour[g.name]}"></div></span>` +
      `<span class="count" data-done="${g.ended}" data-submitted="${g.submitted}">${g.ended} / ${g.submitted}` +
      `${g.failed ? ' (' + g.failed + ' failed)' : ''}</span></div>`;
  }).join('');
  const lanes = st.workers.map((w, i) => i).sort((a, b) => st.workers[a].name.localeCompare(st.workers[b].name, undefined, {numeric: true}));
  const row = {}; lanes.forEach((l, r) => row[l] = r);
  const svg = document.getElementById('stream');
  const h = Math.max(1, lanes.length) * 16 + 4;
  svg.setAttribute('height', h);
  const t0 = st.recent.length ? Math.min(...st.recent.map(b => b.start)) : 0;
  const t1 = Math.max(st.elapsed_s, t0 + 1e-6);
  const sx = 890 / (t1 - t0);
  svg.innerHTML = lanes.map((l, r) => `<text x="4" y="${r * 16 + 12}" font-size="11">${esc(st.workers[l].name)}</text>`).join('') +
    st.recent.map(b => `<rect class="task" x="${(110 + (b.start - t0) * sx).toFixed(1)}" y="${row[b.lane] * 16 + 2}" ` +
      `width="${Math.max(0.5, (b.end - b.start) * sx).toFixed(1)}" height="12" fill="${colour[b.group] || '#888'}"` +
      `${b.ok ? '' : ' stroke="#c00"'}><title>${esc(b.key)} · ${secs(b.end - b.start)}</title></rect>`).join('');
  document.getElementById('workers').innerHTML = '<tr><th>worker</th><th>tasks</th><th>busy</th></tr>' +
    lanes.map(l => { const w = st.workers[l]; return `<tr><td>${esc(w.name)}</td><td>${w.tasks}</td><td>${secs(w.busy_s)}</td></tr>`; }).join('');
  document.getElementById('memory').textContent =
    `managed ${mb(st.managed)}, process RSS ${st.rss == null ? 'unknown' : mb(st.rss)}, of a ${mb(st.memory_limit)} budget`;
  document.getElementById('gpus').textContent = st.gpu.length ?
    st.gpu.map(g => `GPU ${g.gpu}: ${mb(g.memory_used)} of ${mb(g.memory_total)}, ${g.utilisation}% busy`).join('; ') :
    (st.gpus ? 'no NVML samples' : 'no GPU in this cluster');
  document.getElementById('failures').innerHTML =
    st.failures.map(f => `<li class="fail"><code>${esc(f.key)}</code>: ${esc(f.message)}</li>`).join('');
  document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
}
async function poll() {
  try {
    const r = await fetch('/api/status', {cache: 'no-store'});
    if (r.ok) draw(await r.json());
  } catch (e) {
    document.getElementById('summary').textContent = 'the cluster is not answering: ' + e;
  }
  setTimeout(poll, 500);
}
poll();
"##;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_port_binds_to_loopback() {
        assert_eq!(resolve("8787").unwrap().to_string(), "127.0.0.1:8787");
        assert_eq!(resolve(":0").unwrap().to_string(), "127.0.0.1:0");
        assert_eq!(resolve("0.0.0.0:9").unwrap().to_string(), "0.0.0.0:9");
        assert!(resolve("not an address").is_err());
        assert!(resolve("").is_err());
    }

    #[test]
    fn a_taken_port_is_an_error() {
        let cluster = Cluster::builder().threads(1).ignore_env().build().unwrap();
        let first = cluster.dashboard("127.0.0.1:0").unwrap();
        let again = cluster.dashboard(&first.addr().to_string());
        assert!(matches!(again, Err(Error::Config { .. })), "{again:?}");
    }
}
