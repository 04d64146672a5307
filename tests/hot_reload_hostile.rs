//! Hot reload against hostile and careless edits, through the real binary: a file caught
//! half-written, files that compile to nothing (empty, `null`, `---`, comments, NUL junk), a
//! busy log file beside the config, and a broken config that must be reported once.

mod common;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Gateway, Mock, post_json, send};

fn routed(mock: &Mock, model: &str) -> String {
    format!(
        "providers:\n  local:\n    base_url: {}\nmetrics:\n  enabled: true\nrouting:\n  routes:\n    - name: general\n      model: {model}\n",
        mock.url()
    )
}

const AUTO: &str = r#"{"model":"auto","messages":[{"role":"user","content":"x"}]}"#;

/// `llm_gateway_config_reloads_total{result="…"}`, 0 when absent.
async fn reloads(gw: &Gateway, result: &str) -> u64 {
    let text = send("GET", &gw.url("/metrics"), &[], "").await.text();
    let needle = format!("llm_gateway_config_reloads_total{{result=\"{result}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&needle)).map_or(0, |v| v.trim().parse().unwrap())
}

async fn until<F: std::future::Future<Output = bool>>(mut check: impl FnMut() -> F) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// The model the upstream last received.
fn last_model(mock: &Mock) -> String {
    let body: serde_json::Value = serde_json::from_slice(&mock.posts().last().unwrap().body).unwrap();
    body["model"].as_str().unwrap_or_default().to_owned()
}

/// Requests in a loop until stopped: how many were sent and how many failed.
struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    fn start(gw: &Gateway) -> Load {
        let url = gw.url("/v1/chat/completions");
        let (stop, sent, failed) =
            (Arc::<AtomicBool>::default(), Arc::<AtomicUsize>::default(), Arc::<AtomicUsize>::default());
        let (s, n, f) = (stop.clone(), sent.clone(), Arc::clone(&failed));
        let task = tokio::spawn(async move {
            while !s.load(Ordering::SeqCst) {
                let r = post_json(&url, AUTO).await;
                n.fetch_add(1, Ordering::SeqCst);
                if r.status != 200 {
                    f.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        Load { stop, sent, failed, task }
    }

    async fn finish(self) -> (usize, usize) {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap();
        (self.sent.load(Ordering::SeqCst), self.failed.load(Ordering::SeqCst))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_caught_half_written_or_compiling_to_nothing_never_changes_what_is_served() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&routed(&mock, "llama3"));
    let load = Load::start(&gw);

    // A slow writer: the file is truncated, half of it written, and the rest 300 ms later
    // (longer than the 200 ms debounce; the reloader waits until two readings 200 ms apart
    // agree).
    // `providers:\n  local:\n` alone is a valid config (local on its default URL, where
    // nothing listens): applied, it would fail every request.
    let full = routed(&mock, "qwen");
    let (head, tail) = full.split_at(full.find("    base_url").unwrap());
    assert_eq!(head, "providers:\n  local:\n");
    let mut f = std::fs::OpenOptions::new().write(true).truncate(true).open(gw.config_path()).unwrap();
    f.write_all(head.as_bytes()).unwrap();
    f.flush().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    f.write_all(tail.as_bytes()).unwrap();
    drop(f);
    assert!(until(|| async { reloads(&gw, "success").await == 1 }).await, "{}", gw.logs());
    assert!(until(|| async { last_model(&mock) == "qwen" }).await, "the whole file applies");

    // Files that compile to a config with nothing to serve are refused, one by one.
    let hostile = ["", "null\n", "---\n", "# all commented out\n# providers:\n", "\0\0\0junk", "\n\n   \n"];
    for (i, text) in hostile.iter().enumerate() {
        std::fs::write(gw.config_path(), text).unwrap();
        let refused = until(|| async { reloads(&gw, "failure").await == i as u64 + 1 }).await;
        assert!(refused, "{text:?} was not refused:\n{}", gw.logs());
    }
    let (sent, failed) = load.finish().await;
    assert!(sent > 20, "the load ran throughout ({sent} requests)");
    assert_eq!(failed, 0, "{failed} of {sent} requests failed:\n{}", gw.logs());
    assert_eq!(reloads(&gw, "success").await, 1, "only the whole file was applied");
    assert!(gw.wait_for_log("still serving the previous config"), "{}", gw.logs());
    let r = post_json(&gw.url("/v1/chat/completions"), AUTO).await;
    assert_eq!(r.status, 200);
    assert_eq!(last_model(&mock), "qwen");

    // A valid rewrite still applies.
    std::fs::write(gw.config_path(), routed(&mock, "mistral")).unwrap();
    assert!(until(|| async { reloads(&gw, "success").await == 2 }).await, "{}", gw.logs());
    post_json(&gw.url("/v1/chat/completions"), AUTO).await;
    assert_eq!(last_model(&mock), "mistral");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_files_in_the_folder_cause_no_reload_and_a_broken_config_is_reported_once() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&routed(&mock, "llama3"));
    let folder = gw.config_path().parent().unwrap().to_owned();

    // A log file beside the config, written a line at a time.
    let mut log = std::fs::File::create(folder.join("gateway.log")).unwrap();
    for i in 0..100 {
        writeln!(log, "line {i}").unwrap();
        log.flush().unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // A marker the reloader must see: after it, everything before was seen too.
    std::fs::write(gw.config_path(), routed(&mock, "qwen")).unwrap();
    assert!(until(|| async { reloads(&gw, "success").await == 1 }).await, "{}", gw.logs());
    let total = |gw: &Gateway| {
        let gw_url = gw.url("/metrics");
        async move {
            let text = send("GET", &gw_url, &[], "").await.text();
            text.lines()
                .filter(|l| l.starts_with("llm_gateway_config_reloads_total{"))
                .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
                .sum::<u64>()
        }
    };
    assert_eq!(total(&gw).await, 1, "the log file caused no reload:\n{}", gw.logs());

    // A broken config, written once, while the log file keeps growing and SIGHUP asks again.
    let broken = routed(&mock, "mistral").replace("  routes:", "  routez:");
    std::fs::write(gw.config_path(), &broken).unwrap();
    assert!(gw.wait_for_log("did you mean `routes`?"), "{}", gw.logs());
    for i in 0..50 {
        writeln!(log, "more {i}").unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    gw.signal("HUP");
    assert!(until(|| async { reloads(&gw, "failure").await == 2 }).await, "SIGHUP compiles again:\n{}", gw.logs());
    // The counter moves before the line is written; each failure is one event, written whole.
    assert!(gw.wait_for_logged("config reload failed", 2), "then one short line:\n{}", gw.logs());
    let logs = gw.logs();
    assert_eq!(logs.matches("did you mean `routes`?").count(), 1, "the diagnostic is printed once:\n{logs}");
    assert_eq!(logs.matches("config reload failed").count(), 2, "and the short line once:\n{logs}");
    assert_eq!(total(&gw).await, 3, "the log file still causes nothing:\n{logs}");
}
