"""The shipped dashboard and alert rules against a real Prometheus scraping a real gateway:
every dashboard query returns data, and each alert fires under the fault it describes (and
no other alert does). Usage: python3 run.py (LLM_GATEWAY_BIN overrides the binary)."""
import atexit
import json
import re
import signal
import subprocess
import sys
import threading
import time

from common import (DEPLOY, Gateway, Mock, Prometheus, chat, cleanup, fail, free_port, http, short_for, stop_all, tempdir,
                    wait_for)

atexit.register(stop_all)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))

KEYS = {"app": "sk-test-app-0123456789abcdef", "tight": "sk-test-tight-0123456789abcdef",
        "narrow": "sk-test-narrow-0123456789abcdef"}


def config(mock_a, mock_b, backend="memory"):
    return f"""
metrics: {{enabled: true}}
providers:
  open_ai:
    api_key: test
    endpoints: [{{name: openai-mock, base_url: "{mock_a.url}"}}]
    health_check: {{interval_seconds: 1, timeout_seconds: 1}}
  local:
    endpoints:
      - {{name: gpu-a, base_url: "{mock_a.url}"}}
      - {{name: gpu-b, base_url: "{mock_b.url}"}}
    health_check: {{interval_seconds: 1, timeout_seconds: 1}}
retry: {{attempts: 2, backoff_ms: 10, max_backoff_ms: 50}}
fallbacks:
  "gpt-flaky": [gpt-ok]
routing:
  routes:
    - {{name: chat, model: gpt-ok}}
rate_limits: {{backend: "{backend}", timeout_ms: 50}}
limits: {{queue_timeout_seconds: 120, max_queue: 2}}
api_keys:
  enabled: true
  keys:
    - {{name: app, key: {KEYS['app']}, user: team-a}}
    - {{name: tight, key: {KEYS['tight']}, rpm: 1}}
    - {{name: narrow, key: {KEYS['narrow']}, max_concurrent: 1}}
"""


def ident(alert):
    labels = {k: v for k, v in alert["labels"].items() if k != "severity"}
    return json.dumps(labels, sort_keys=True)


class Traffic:
    """Sends `send()` in a loop on a thread until stopped."""

    def __init__(self, send, every=0.1):
        self.stopped = threading.Event()

        def loop():
            while not self.stopped.is_set():
                send()
                self.stopped.wait(every)

        self.thread = threading.Thread(target=loop, daemon=True)
        self.thread.start()

    def stop(self):
        self.stopped.set()
        self.thread.join()


def expect_alert(prom, name, labels, before, timeout=45):
    """Waits for alert `name` with `labels` to fire, then checks it is the only new one."""
    return expect_alerts(prom, [(name, labels)], before, timeout)


def expect_alerts(prom, expected, before, timeout=45):
    """Waits for every (name, labels) of `expected` to fire, then checks no other one started."""
    def firing(name, labels):
        return [a for a in prom.alerts() if a["labels"]["alertname"] == name
                and all(a["labels"].get(k) == v for k, v in labels.items())]

    started = time.monotonic()
    for name, labels in expected:
        wait_for(f"{name} {labels} to fire (firing now: {[ident(a) for a in prom.alerts()]})",
                 lambda: firing(name, labels), timeout)
    # Other rules evaluate every second too: give a wrong one the time to show up.
    time.sleep(3)
    now = {ident(a) for a in prom.alerts()}
    new = now - before
    wanted = {ident(a) for name, labels in expected for a in firing(name, labels)}
    if new != wanted:
        fail(f"{[n for n, _ in expected]}: expected only {sorted(wanted)} to start firing, got {sorted(new)}")
    names = " and ".join(f"{n} {l}" for n, l in expected)
    print(f"ok: {names} fired in {time.monotonic() - started:.1f} s, {'alone' if len(expected) == 1 else 'together'}")
    return now


def main():
    started = time.monotonic()
    rules = DEPLOY / "prometheus" / "alerts.yml"
    for args in (["check", "rules", str(rules)], ["test", "rules", str(rules.with_name("alerts.test.yml"))]):
        out = subprocess.run(["promtool", *args], capture_output=True, text=True)
        if out.returncode != 0:
            fail(f"promtool {' '.join(args)}:\n{out.stdout}{out.stderr}")
        print(f"ok: promtool {args[0]} rules")

    mock_a, mock_b = Mock(), Mock()
    cfg = tempdir("observability-") / "config.yaml"
    cfg.write_text(config(mock_a, mock_b))
    gw = Gateway(cfg)
    base = gw.url
    # The shipped rules with `for:` shortened to seconds (production waits minutes); the
    # expressions, thresholds and rate windows are the shipped ones.
    prom = Prometheus([f"127.0.0.1:{gw.port}"], short_for(rules.read_text()))

    key = KEYS["app"]
    # Warm-up: every series the faults move exists before its fault, so rate() sees the change.
    for model in ("gpt-ok", "gpt-slow", "gpt-err", "llama-ok", "chat"):
        for stream in (False, True):
            status, _, body = chat(base, key, model, stream)
            if status != 200:
                fail(f"warm-up {model} stream={stream}: {status} {body[:300]!r}")
    wait_for("the first scrape of the warm-up",
             lambda: prom.values('sum(llm_gateway_requests_total{status="200", provider!="-"})') == [10.0])
    time.sleep(2)
    before = {ident(a) for a in prom.alerts()}
    if before:
        fail(f"alerts firing before any fault: {sorted(before)}")
    print("ok: scraped, no alert firing")

    # 1. An endpoint goes down: its health probe fails.
    mock_b.down = True
    before = expect_alert(prom, "LLMGatewayEndpointDown", {"provider": "local", "endpoint": "gpu-b"}, before)

    # 2. The upstream answers 5xx to half the requests (all-failing traffic would fire any
    # threshold below 100 %).
    mock_a.fail = True
    t = Traffic(lambda: (chat(base, key, "gpt-err"), chat(base, key, "gpt-ok")), 0.05)
    before = expect_alert(prom, "LLMGatewayHighErrorRatio", {"job": "llm-gateway"}, before)
    t.stop()
    mock_a.fail = False

    # 3. The first token takes 5.5 s (over the 5 s threshold).
    mock_a.slow = 5.5

    def slow_streams():
        batch = [threading.Thread(target=chat, args=(base, key, "gpt-slow", True)) for _ in range(4)]
        for th in batch:
            th.start()
        for th in batch:
            th.join()

    t = Traffic(slow_streams, 0)
    before = expect_alert(prom, "LLMGatewaySlowTimeToFirstToken", {"model": "gpt-slow"}, before, timeout=60)
    t.stop()
    mock_a.slow = 0

    # 4. A key limited to one request at a time sends three slow ones (one runs, two wait: the
    # queue, of two, stays full), then a fourth once the queue's refusal counters have been
    # scraped at zero: it is refused.
    mock_a.hold = 3
    held = [threading.Thread(target=chat, args=(base, KEYS["narrow"], "gpt-hold")) for _ in range(3)]
    for th in held:
        th.start()
    time.sleep(2.5)
    refused = http("POST", base + "/v1/chat/completions",
                   {"model": "gpt-hold", "messages": [{"role": "user", "content": "x"}]},
                   {"authorization": f"Bearer {KEYS['narrow']}"})
    if refused[0] != 429:
        fail(f"a fourth request to a full queue: expected 429, got {refused[0]}")
    before = expect_alerts(prom, [("LLMGatewayQueueSaturated", {"scope": "key"}),
                                  ("LLMGatewayQueueRejecting", {"scope": "key", "reason": "queue_full"})], before)
    for th in held:
        th.join()
    mock_a.hold = 0

    # 5. A key with rpm 1 keeps sending.
    t = Traffic(lambda: chat(base, KEYS["tight"], "gpt-ok"), 0.2)
    before = expect_alert(prom, "LLMGatewayRateLimited", {"key": "tight", "limit": "rpm"}, before)
    t.stop()

    # 6. A broken config lands in the watched file: the reload fails, the old config serves on.
    good = cfg.read_text()
    cfg.write_text(good.replace("retry:", "retry: [", 1))
    before = expect_alert(prom, "LLMGatewayConfigReloadFailed", {"result": "failure"}, before)
    status, _, _ = chat(base, key, "gpt-ok")
    if status != 200:
        fail(f"after a failed reload the previous config should serve: {status}")

    # 7. Rate limits move to a Redis that is not there (a valid config: the reload succeeds).
    cfg.write_text(config(mock_a, mock_b, f"redis://127.0.0.1:{free_port()}/0"))
    wait_for("the Redis config to load",
             lambda: prom.values('llm_gateway_config_reloads_total{result="success"}') == [1.0])
    t = Traffic(lambda: chat(base, KEYS["tight"], "gpt-ok"), 0.1)
    before = expect_alert(prom, "LLMGatewayRateLimitBackendErrors", {}, before)
    t.stop()
    cfg.write_text(good)

    # The dashboard: after traffic that touches every panel, each query has data.
    for model in ("gpt-ok", "gpt-flaky", "llama-ok", "chat", "gpt-slow"):
        for stream in (False, True):
            chat(base, key, model, stream)
    time.sleep(2.5)
    check_dashboard(prom)
    cleanup()
    print(f"PASS: dashboard and alerts verified against Prometheus in {time.monotonic() - started:.0f} s")


def check_dashboard(prom):
    dash = json.loads((DEPLOY / "grafana" / "llm-gateway.json").read_text())
    # Grafana's variables as "All", and a rate window longer than the test.
    subst = {"$__rate_interval": "5m", "$job": "llm-gateway", "$instance": ".*", "$model": ".*"}

    def expand(expr):
        for k, v in subst.items():
            expr = expr.replace(k, v)
        if "$" in expr:
            fail(f"unknown variable in {expr!r}")
        return expr

    exprs = []
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            exprs.append((panel["title"], target["expr"]))
    exprs += [(f"annotation {a['name']}", a["expr"]) for a in dash["annotations"]["list"]]
    for title, expr in exprs:
        # Grafana's time() is the panel's time: Prometheus' instant query means the same.
        values = prom.values(expand(expr))
        if not values:
            fail(f"dashboard panel {title!r}: no data for {expand(expr)!r}: {prom.query(expand(expr))}")
    for var in dash["templating"]["list"]:
        if var["type"] != "query":
            continue
        m = re.fullmatch(r"label_values\((.+), (\w+)\)", var["query"]["query"])
        series = prom.query(expand(m.group(1)))
        if not any(m.group(2) in s["metric"] for s in series):
            fail(f"variable {var['name']}: no {m.group(2)} label on {m.group(1)}")
    print(f"ok: all {len(exprs)} dashboard queries and {len(dash['templating']['list']) - 1} variables return data")


if __name__ == "__main__":
    main()
