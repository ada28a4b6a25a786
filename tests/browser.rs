//! End-to-end tests of the performance report and the live dashboard in headless Chromium,
//! driven through chromedriver (Debian's `chromium` and `chromium-driver`; nothing is
//! downloaded). Each test skips, saying why, when the browser or the driver is missing.
//! Screenshots go to `<target dir>/screenshots/`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use onebox::diagnostics::PerformanceReport;
use onebox::prelude::*;
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";

fn find_driver() -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("chromedriver"))
            .find(|p| p.is_file())
    })
}

fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A chromedriver process and a headless Chromium session; both end when dropped.
struct Browser {
    client: Option<Client>,
    driver: Child,
    _profile: TempDir,
}

struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Browser {
    async fn start(test: &str) -> Option<Browser> {
        if !Path::new(CHROMIUM).is_file() {
            eprintln!("SKIPPED {test}: {CHROMIUM} is missing (apt-get install chromium)");
            return None;
        }
        let Some(driver_path) = find_driver() else {
            eprintln!("SKIPPED {test}: chromedriver is missing (apt-get install chromium-driver)");
            return None;
        };
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile =
            std::env::temp_dir().join(format!("onebox-chromium-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        let profile = TempDir(profile);
        let caps = json!({
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                    "--window-size=1200,1600",
                    format!("--user-data-dir={}", profile.0.display()),
                ]
            }
        });
        let caps = match caps {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut browser = Browser {
            client: None,
            driver,
            _profile: profile,
        };
        loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => {
                    browser.client = Some(c);
                    return Some(browser);
                }
                Err(e) if Instant::now() > deadline => panic!("no browser session: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    fn client(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    async fn js(&self, script: &str) -> Value {
        self.client().execute(script, vec![]).await.unwrap()
    }

    async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client().screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"));
        let path = screenshots().join(name);
        std::fs::write(&path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
        path
    }

    async fn close(mut self) {
        if let Some(c) = self.client.take() {
            let _ = c.close().await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The run both tests look at: labelled groups (one with markup and non-ASCII characters in
/// its name), a reduction, and a failing task.
fn workload(cluster: &Cluster) -> (u64, Vec<(&'static str, u64, u64)>) {
    let load: Vec<Delayed<u64>> = (0..12u64)
        .map(|i| {
            cluster
                .delayed(move || {
                    std::thread::sleep(Duration::from_millis(3));
                    i
                })
                .label("load")
        })
        .collect();
    let odd: Vec<Delayed<u64>> = (0..5u64)
        .map(|i| cluster.delayed(move || i * 10).label("ünï <b>code</b>"))
        .collect();
    let sum = Delayed::join_with(
        cluster,
        load.into_iter().chain(odd).collect(),
        |v: Vec<u64>| v.iter().sum::<u64>(),
    )
    .label("sum")
    .compute()
    .unwrap();
    let failed = cluster
        .try_delayed(|| Err::<u64, _>("disk <full>"))
        .label("boom")
        .compute();
    assert!(failed.is_err());
    // (group, tasks run, failures), in the table's order.
    let groups = vec![
        ("boom", 1, 1),
        ("load", 12, 0),
        ("sum", 1, 0),
        ("ünï <b>code</b>", 5, 0),
    ];
    (sum, groups)
}

#[tokio::test]
async fn the_report_draws_every_task_and_the_group_table() {
    let Some(browser) = Browser::start("report").await else {
        return;
    };
    let cluster = Cluster::builder().threads(2).ignore_env().build().unwrap();
    // 8 MiB of a bag partition held through the run: the managed bytes the report must show.
    let held = Bag::from_delayed(&cluster, vec![cluster.value(vec![0u64; 1 << 20])]);
    assert_eq!(cluster.managed_bytes(), 8 << 20);
    let path = screenshots().join("report.html");
    let report = PerformanceReport::start(&cluster, &path).unwrap();
    let (sum, groups) = workload(&cluster);
    let recorded = report.finish().unwrap();
    assert_eq!(
        sum,
        (0..12).sum::<u64>() + (0..5).map(|i| i * 10).sum::<u64>()
    );
    let expected_tasks: u64 = groups.iter().map(|g| g.1).sum();
    assert_eq!(recorded.totals().ended(), expected_tasks);

    let url = format!("file://{}", path.display());
    browser.client().goto(&url).await.unwrap();
    let bars = browser
        .js("return document.querySelectorAll('rect.task').length")
        .await;
    assert_eq!(bars, json!(expected_tasks));
    for (group, runs, _) in &groups {
        let n = browser
            .js(&format!(
                "return Array.from(document.querySelectorAll('rect.task'))\
                 .filter(r => r.dataset.group === {}).length",
                json!(group)
            ))
            .await;
        assert_eq!(n, json!(runs), "bars of {group}");
    }
    let table = browser
        .js(
            "return Array.from(document.querySelectorAll('#groups tr.group')).map(r => \
             [r.dataset.group, r.cells[1].textContent, r.cells[2].textContent, \
              r.cells[3].textContent])",
        )
        .await;
    let want: Vec<Value> = groups
        .iter()
        .map(|(g, runs, errors)| json!([g, runs.to_string(), runs.to_string(), errors.to_string()]))
        .collect();
    assert_eq!(table, Value::Array(want));
    let failures = browser
        .js("return Array.from(document.querySelectorAll('#failures li')).map(l => l.textContent)")
        .await;
    let failures = failures.as_array().unwrap();
    assert_eq!(failures.len(), 1);
    let text = failures[0].as_str().unwrap();
    assert!(
        text.starts_with("boom#") && text.contains("disk <full>"),
        "{text}"
    );
    // One lane per pool thread that ran something, and nothing fetched from anywhere.
    let lanes = browser
        .js(
            "return Array.from(document.querySelectorAll('#stream text')).map(t => t.textContent)\
             .filter(t => t.startsWith('cpu '))",
        )
        .await;
    assert!(!lanes.as_array().unwrap().is_empty());
    assert!(lanes.as_array().unwrap().len() <= cluster.threads());
    let fetched = browser
        .js("return performance.getEntriesByType('resource').length")
        .await;
    assert_eq!(fetched, json!(0));
    let hover = browser
        .js(
            "const r = document.querySelector('rect.task[data-group=\"load\"]'); \
             r.dispatchEvent(new MouseEvent('mouseenter')); \
             return document.getElementById('info').textContent",
        )
        .await;
    assert!(hover.as_str().unwrap().starts_with("load#"), "{hover}");
    // The memory chart: RSS, managed bytes (the held partition throughout) and the budget.
    let managed = browser
        .js("return document.getElementById('managed-peak').dataset.bytes")
        .await;
    assert_eq!(managed, json!((8u64 << 20).to_string()));
    let series = browser
        .js(
            "return Array.from(document.querySelectorAll('#memory-chart text[fill]'))\
             .filter(t => t.getAttribute('fill') !== '#666').map(t => t.textContent)",
        )
        .await;
    assert_eq!(series.as_array().unwrap().len(), 3, "{series}");
    assert_eq!(series[0], json!("RSS MB"));
    assert_eq!(series[1], json!("managed MB"));
    drop(held);
    assert_eq!(cluster.managed_bytes(), 0);
    browser.screenshot("report.png").await;
    browser.close().await;
}

#[tokio::test]
async fn the_dashboard_follows_a_run_and_agrees_with_the_library() {
    let Some(browser) = Browser::start("dashboard").await else {
        return;
    };
    let cluster = Cluster::builder()
        .threads(2)
        .ignore_env()
        .dashboard("127.0.0.1:0")
        .build()
        .unwrap();
    let url = cluster.dashboard_url().unwrap();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    // 8 MiB of a bag partition the scheduler holds: the page's managed bytes.
    let held = Bag::from_delayed(&cluster, vec![cluster.value(vec![0u64; 1 << 20])]);
    browser.client().goto(&url).await.unwrap();

    // 40 tasks of 60 ms on 2 threads: 1.2 s at least, while the page polls twice a second.
    let n = 40u64;
    let handles: Vec<TaskHandle<u64>> = (0..n)
        .map(|i| {
            cluster
                .delayed(move || {
                    std::thread::sleep(Duration::from_millis(60));
                    i
                })
                .label("slow")
                .submit()
        })
        .collect();
    let done_js = "const c = document.querySelector('.group[data-group=\"slow\"] .count'); \
                   return c ? Number(c.dataset.done) : -1";
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = browser.js(done_js).await.as_i64().unwrap();
        if seen.last() != Some(&done) {
            seen.push(done);
        }
        if done == n as i64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the page never showed the end: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("done counts the page showed: {seen:?}");
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    assert!(
        seen.iter().any(|&d| d > 0 && d < n as i64),
        "the page never showed the run in progress: {seen:?}"
    );
    let values = gather(handles).unwrap();
    assert_eq!(values, (0..n).collect::<Vec<_>>());

    let status = browser
        .js("return fetch('/api/status').then(r => r.json())")
        .await;
    let slow = status["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "slow")
        .unwrap();
    assert_eq!(slow["submitted"], json!(n));
    assert_eq!(slow["ended"], json!(n));
    assert_eq!(slow["failed"], json!(0));
    assert_eq!(status["threads"], json!(cluster.threads()));
    assert_eq!(status["gpus"], json!(cluster.gpu_count()));
    assert_eq!(status["memory_limit"], json!(cluster.plan().memory_limit));
    assert_eq!(status["managed"], json!(cluster.managed_bytes()));
    assert_eq!(status["managed"], json!(8u64 << 20));
    assert_eq!(
        status["plan"],
        serde_json::to_value(cluster.plan()).unwrap()
    );
    let ran: u64 = status["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["tasks"].as_u64().unwrap())
        .sum();
    assert_eq!(ran, n);
    assert!(status["workers"].as_array().unwrap().len() <= cluster.threads());
    let busy: f64 = slow["total_s"].as_f64().unwrap();
    assert!(busy >= n as f64 * 0.06, "{busy}");
    assert_eq!(status["totals"]["ended"], json!(n));
    // The page draws what the endpoint says.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let bars = browser
        .js("return document.querySelectorAll('#stream rect.task').length")
        .await;
    assert_eq!(bars, json!(n));
    let summary = browser
        .js("return document.getElementById('summary').textContent")
        .await;
    assert!(
        summary
            .as_str()
            .unwrap()
            .starts_with(&format!("{n} of {n} tasks done")),
        "{summary}"
    );
    let memory = browser
        .js("return document.getElementById('memory').textContent")
        .await;
    assert!(
        memory
            .as_str()
            .unwrap()
            .starts_with("managed 8.0 MiB, process RSS "),
        "{memory}"
    );
    drop(held);
    assert_eq!(cluster.managed_bytes(), 0);
    browser.screenshot("dashboard.png").await;
    browser.close().await;
}
