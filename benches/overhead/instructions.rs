//! `overhead instructions`: the user-space instructions the floor and the gateway execute per
//! request, counted by callgrind, for every pair streamed and whole. On a VM whose speed drifts
//! by a fifth within a minute, latency ratios move by ±0.1 between runs; an instruction count
//! moves by under 0.1 % in most modes (about 1 % at worst, with what ran before it), so it
//! shows a change of a few hundred instructions that no latency run could. It leaves out what
//! instructions do not show — the kernel's share (system calls, the network), cache misses,
//! waits — which the latency harness measures.
//!
//! Both proxies run under `valgrind --tool=callgrind` (every thread counted: the gateway's log
//! writer too), the mock natively. For each measurement the counters are zeroed after a
//! warm-up, `--requests` requests go through one keep-alive connection, and the count is
//! dumped once the gateway's log writer has had time to write their lines. `--keep DIR` keeps
//! the dumps (`gateway.out.N`, `floor.out.N`, numbered in the order printed) for
//! `callgrind_annotate`.

use std::time::Duration;

use super::{Proc, connect, flag, in_mode, one, pairs, spawn_gateway, spawn_self};

/// Warm-up requests before each count: connection pools, buffers and caches in their steady state.
const WARM_UP: usize = 100;

pub async fn instructions(args: &[String]) {
    let gateway_bin = super::gateway_bin(args);
    let requests: usize = flag(args, "--requests", "500").parse().expect("requests");
    let only = flag(args, "--only", "");
    let keep = flag(args, "--keep", "");
    let dir = match keep.as_str() {
        "" => std::env::temp_dir().join(format!("llm-gateway-instructions-{}", std::process::id())),
        keep => std::path::PathBuf::from(keep),
    };
    std::fs::create_dir_all(&dir).expect("dir");
    let callgrind = |name: &str| {
        let out = dir.join(format!("{name}.out"));
        ["valgrind", "--tool=callgrind", "--quiet", &format!("--callgrind-out-file={}", out.display())]
            .map(String::from)
            .to_vec()
    };
    let mock = spawn_self(&[], &["mock"]);
    let mut floor = Counted::new(spawn_self(&callgrind("floor"), &["floor", &mock.addr.to_string()]), &dir, "floor");
    let mut gateway = Counted::new(
        spawn_gateway(&callgrind("gateway"), &gateway_bin, mock.addr, &["--worker-threads", "1"]),
        &dir,
        "gateway",
    );
    println!(
        "instructions per request (callgrind, user space, every thread), {requests} requests per target and mode after {WARM_UP}:"
    );
    println!("  {:<38} {:<8} {:>10} {:>10} {:>8}", "pair", "mode", "floor", "gateway", "ratio");
    for pair in pairs().into_iter().filter(|p| p.name.contains(&only)) {
        for (first, mode) in [(true, "streamed"), (false, "whole")] {
            let floor_count = floor.per_request(in_mode(pair.native, first), requests).await;
            let gateway_count = gateway.per_request(in_mode(pair.gateway, first), requests).await;
            println!(
                "  {:<38} {mode:<8} {floor_count:>10.0} {gateway_count:>10.0} {:>7.2}x",
                pair.name,
                gateway_count / floor_count
            );
        }
    }
    drop((gateway, floor, mock));
    if keep.is_empty() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A process under callgrind and the dumps it has written so far.
struct Counted {
    proc: Proc,
    out: std::path::PathBuf,
    dumps: usize,
}

impl Counted {
    fn new(proc: Proc, dir: &std::path::Path, name: &str) -> Self {
        Self { proc, out: dir.join(format!("{name}.out")), dumps: 0 }
    }

    /// Instructions per request over `n` requests of `(path, body)`.
    async fn per_request(&mut self, (path, body): (&'static str, &'static str), n: usize) -> f64 {
        let mut sender = connect(self.proc.addr).await;
        for _ in 0..WARM_UP {
            one(&mut sender, self.proc.addr, path, body, false).await;
        }
        self.control("-z");
        for _ in 0..n {
            one(&mut sender, self.proc.addr, path, body, false).await;
        }
        // The log writer writes every 50 ms: let it take the last lines in.
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.control("-d");
        self.dumps += 1;
        let dump = format!("{}.{}", self.out.display(), self.dumps);
        let text = std::fs::read_to_string(&dump).unwrap_or_else(|e| panic!("{dump}: {e}"));
        let total: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("totals:").or_else(|| l.strip_prefix("summary:")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{dump}: no totals"));
        total / n as f64
    }

    fn control(&self, what: &str) {
        let status = std::process::Command::new("callgrind_control")
            .args([what, &self.proc.child.id().to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("callgrind_control (apt-get install valgrind)");
        assert!(status.success(), "callgrind_control {what} failed");
    }
}
