//! The real libziti (0.29.3 from the openziti wheel; `./scripts/setup-zrok.sh`), each case in a
//! child process under a deadline, so a crash or a hang shows up as a failed case instead of
//! taking the test run down: its version, the errors it gives for a missing file, invalid
//! JSON and a closed controller port, and the inputs that crash or hang it refused by us
//! before it sees them.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use llm_gateway::transport::zrok::{env, lib_path, libziti::Loaded, probe};

/// Runs the `child` test in a new process with `case`; its printed result, or why it died.
fn in_child(case: &str) -> String {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env("LIBZITI_CASE", case)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("case {case} hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = std::io::read_to_string(child.stdout.take().unwrap()).unwrap();
    assert!(status.success(), "case {case} died: {status}\n{out}");
    out.lines()
        .find_map(|l| l.split_once("RESULT: ").map(|(_, r)| r))
        .unwrap_or_else(|| panic!("no result: {out}"))
        .to_owned()
}

#[test]
fn child() {
    let Ok(case) = std::env::var("LIBZITI_CASE") else { return };
    let dir = tempfile::tempdir().unwrap();
    let lib = || Loaded::open(&lib_path()).expect("libziti: run ./scripts/setup-zrok.sh");
    let load = |content: Option<&str>| {
        let path = dir.path().join("identity.json");
        if let Some(c) = content {
            std::fs::write(&path, c).unwrap();
        }
        lib().load_context(&path).err().unwrap_or_else(|| "loaded".into())
    };
    let result = match case.as_str() {
        "version" => lib().version().to_owned(),
        "missing" => load(None),
        "invalid" => load(Some("this is not json")),
        "closed" => {
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            load(Some(&format!(
                r#"{{"ztAPI":"https://127.0.0.1:{port}/edge/client/v1","id":{{"key":"pem:K","cert":"pem:C","ca":"pem:A"}}}}"#
            )))
        }
        other => panic!("unknown case {other}"),
    };
    println!("RESULT: {result}");
}

#[test]
fn version_is_checked() {
    assert_eq!(in_child("version"), "0.29.3");
}

#[test]
fn bad_identity_files_are_errors() {
    let missing = in_child("missing");
    assert!(missing.ends_with("Configuration not found (-1)"), "{missing}");
    let invalid = in_child("invalid");
    assert!(invalid.ends_with("Configuration is invalid (-13)"), "{invalid}");
    let closed = in_child("closed");
    assert!(closed.ends_with("Ziti Controller is not available (-15)"), "{closed}");
}

#[test]
fn identities_that_crash_it_never_reach_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("identity.json");
    for identity in
        ["{}", r#"{"ztAPI":"https://c:1","id":{"cert":"C","ca":"A"}}"#, r#"{"id":{"key":"K","cert":"C","ca":"A"}}"#]
    {
        std::fs::write(&path, identity).unwrap();
        assert!(env::validate_identity(&path).is_err(), "{identity}");
    }
}

/// A listener that accepts and never speaks makes libziti hang; the probe gives up.
#[tokio::test]
async fn a_silent_controller_is_refused_before_libziti_loads() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}/edge/client/v1", silent.local_addr().unwrap());
    let _held = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            held.push(silent.accept().await.unwrap());
        }
    });
    // A throwaway self-signed CA (its key was not kept), so the probe gets as far as TLS.
    let ca = include_str!("../fixtures/zrok/ca.pem");
    let err = probe::controller(&url, ca).await.unwrap_err();
    assert!(err.ends_with("is not usable: no answer within 10 s"), "{err}");
    let err = probe::controller(&url, "not a certificate").await.unwrap_err();
    assert!(err.ends_with("the identity's CA bundle has no certificate"), "{err}");
}
