"""The scaling-out recipe (deploy/scaling-out/) run for real: two gateway replicas sharing one
config and one keys file, rate limits in one Redis, HAProxy checking /ready in front, and
Prometheus scraping each replica. Checks that a key's rpm holds across replicas, that one edit
reaches both, and that stopping a replica leaves the load balancer serving and Prometheus
aggregating. Usage: python3 scaling_out.py (LLM_GATEWAY_BIN overrides the binary)."""
import atexit
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

from common import (DEPLOY, Gateway, Mock, Prometheus, chat, cleanup, fail, free_port, gateway_binary, http,
                    short_for, spawn, stop_all, tempdir, wait_for)

atexit.register(stop_all)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))

RECIPE = DEPLOY / "scaling-out"
LIMITED = "sk-test-limited-0123456789abcdef"
APP = "sk-test-app-0123456789abcdef"
CAROL = "sk-test-carol-0123456789abcdef"
RPM = 10


def keys(workdir, *args):
    out = subprocess.run([gateway_binary(), "keys", "--file", str(workdir / "keys.yaml"), *args],
                         capture_output=True, text=True)
    if out.returncode != 0:
        fail(f"keys {args}: {out.stderr}")


def main():
    started = time.monotonic()
    workdir = tempdir("scaling-out-")
    for name in ("config.yaml", "keys.yaml"):
        shutil.copy(RECIPE / name, workdir / name)
    keys(workdir, "add", "limited", "--key", LIMITED, "--rpm", str(RPM))
    keys(workdir, "add", "app", "--key", APP)

    redis_port = free_port()
    redis = spawn([shutil.which("redis-server") or fail("redis-server is not installed"), "--port", str(redis_port),
                   "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for("redis", lambda: redis.poll() is None and _redis_ping(redis_port))

    # One upstream per replica (the same config, UPSTREAM_URL differs), so one replica's view
    # of its endpoint can change without the other's.
    mocks = {"gw1": Mock(), "gw2": Mock()}
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    config = workdir / "config.yaml"
    replicas = {name: Gateway(config, {"UPSTREAM_URL": m.url, "REDIS_URL": redis_url}) for name, m in mocks.items()}

    lb_port = free_port()
    lb = f"http://127.0.0.1:{lb_port}"
    haproxy_log = open(workdir / "haproxy.log", "w")
    spawn([shutil.which("haproxy") or fail("haproxy is not installed"), "-f", str(RECIPE / "haproxy.cfg"), "-db"],
          stdout=haproxy_log, stderr=haproxy_log,
          env={**os.environ, "LB_ADDR": f"127.0.0.1:{lb_port}",
               "REPLICA_1": f"127.0.0.1:{replicas['gw1'].port}", "REPLICA_2": f"127.0.0.1:{replicas['gw2'].port}"})

    def served_by(n):
        seen = set()
        for _ in range(n):
            status, headers, body = chat(lb, APP, "llama-ok")
            if status == 0:  # HAProxy not listening yet
                return set()
            if status != 200:
                fail(f"through the load balancer: {status} {body[:300]!r}")
            seen.add(headers.get("x-served-by"))
        return seen

    # HAProxy marks a server up after two passing /ready checks.
    wait_for(f"HAProxy to send traffic to both replicas (log: {haproxy_log.name})",
             lambda: served_by(4) == {"gw1", "gw2"}, timeout=20)
    print("ok: the load balancer spreads requests over gw1 and gw2")

    targets = [f"127.0.0.1:{g.port}" for g in replicas.values()]
    prom = Prometheus(targets, short_for((DEPLOY / "prometheus" / "alerts.yml").read_text()),
                      shipped=(RECIPE / "prometheus.yml").read_text())
    wait_for("both replicas scraped", lambda: prom.values('sum(up{job="llm-gateway"})') == [2.0])

    # 1. One rpm limit for the key, whichever replica serves it. Fixed minute windows: start
    # early in a minute so the burst does not straddle two.
    if time.time() % 60 > 45:
        time.sleep(61 - time.time() % 60)
    answers = [chat(lb, LIMITED, "llama-ok") for _ in range(RPM + 15)]
    accepted = [h.get("x-served-by") for s, h, _ in answers if s == 200]
    refused = [s for s, _, _ in answers if s == 429]
    if len(accepted) != RPM or len(refused) != 15:
        fail(f"rpm {RPM} across replicas: {len(accepted)} accepted, {len(refused)} refused, "
             f"statuses {[s for s, _, _ in answers]}")
    if set(accepted) != {"gw1", "gw2"}:
        fail(f"the accepted requests should have been served by both replicas, got {accepted}")
    wait_for("Prometheus to add up the refusals of both replicas",
             lambda: prom.values('sum(llm_gateway_rate_limited_total{key="limited"})') == [15.0])
    per_replica = [r for r in prom.query('sum by (instance) (llm_gateway_rate_limited_total{key="limited"})')
                   if r["value"][1] != "0"]
    # The key's refusal series exist from the start at zero, so even a burst of refusals between
    # two scrapes is an increase, and the alert fires (its `for:` shortened to 2 s here).
    wait_for("LLMGatewayRateLimited for the limited key", lambda: [a for a in prom.alerts()
             if a["labels"]["alertname"] == "LLMGatewayRateLimited" and a["labels"]["key"] == "limited"])
    print(f"ok: rpm {RPM} held across replicas: {accepted.count('gw1')} accepted on gw1, "
          f"{accepted.count('gw2')} on gw2, 15 refused ({len(per_replica)} replicas refused some)")

    # 2. One edit of each shared file reaches both replicas.
    before = {r["metric"]["sha256"] for r in prom.query("llm_gateway_config_info")}
    text = config.read_text()
    config.write_text(text.replace("providers:", "routing:\n  aliases:\n    team-model: llama-ok\nproviders:", 1))
    keys(workdir, "add", "carol", "--key", CAROL)
    for name, g in replicas.items():
        def edited():
            status, headers, _ = chat(g.url, CAROL, "team-model")
            return status == 200 and headers.get("x-llm-gateway-model") == "llama-ok"
        wait_for(f"{name} to serve the new key and alias", edited, timeout=15)
    def one_new_config():
        shas = {r["metric"]["sha256"] for r in prom.query("llm_gateway_config_info")}
        return len(shas) == 1 and shas != before
    wait_for("both replicas to report the same new config", one_new_config)
    print("ok: one edit of config.yaml and keys.yaml reached both replicas (same config_info on both)")

    # 3. Health is per replica: gw2's endpoint fails its probes, gw2's /ready turns 503 and the
    # load balancer leaves it out while gw1, whose endpoint is fine, serves everything.
    gw1 = f"127.0.0.1:{replicas['gw1'].port}"
    gw2 = f"127.0.0.1:{replicas['gw2'].port}"
    mocks["gw2"].down = True
    wait_for("gw2's /ready to answer 503", lambda: http("GET", replicas["gw2"].url + "/ready")[0] == 503)
    if http("GET", replicas["gw1"].url + "/ready")[0] != 200:
        fail("gw1's /ready should stay 200 while only gw2's endpoint is down")
    wait_for("HAProxy to send everything to gw1", lambda: served_by(6) == {"gw1"})
    wait_for("Prometheus to show the endpoint down on gw2 only",
             lambda: {r["metric"]["instance"]: r["value"][1] for r in prom.query("llm_gateway_endpoint_healthy")}
             == {gw1: "1", gw2: "0"})
    mocks["gw2"].down = False
    wait_for("HAProxy to send traffic to gw2 again", lambda: served_by(4) == {"gw1", "gw2"}, timeout=40)
    print("ok: gw2's endpoint down: gw2 /ready 503, HAProxy served everything through gw1; back after recovery")

    # 4. A replica stops: the load balancer serves on, Prometheus sees it down and still sums.
    served = 'sum(llm_gateway_requests_total{provider!="-"})'
    gw1_before = forwarded(replicas["gw1"].url)
    replicas["gw2"].stop()
    statuses = [chat(lb, APP, "llama-ok") for _ in range(10)]
    bad = [(s, b[:200]) for s, _, b in statuses if s != 200]
    if bad:
        fail(f"with gw2 stopped, the load balancer should serve every request through gw1: {bad}")
    if {h.get("x-served-by") for _, h, _ in statuses} != {"gw1"}:
        fail("with gw2 stopped, gw1 should have served everything")
    wait_for("up == 0 for gw2", lambda: prom.values(f'up{{instance="{gw2}"}}') == [0.0])
    # A stopped replica's series go stale, so the sum is gw1's alone; rates keep working.
    gw1_after = forwarded(replicas["gw1"].url)
    if gw1_after != gw1_before + 10:
        fail(f"gw1 should have counted the 10 requests: {gw1_before} -> {gw1_after}")
    wait_for("the sum to be gw1's alone",
             lambda: prom.values(served) == [gw1_after]
             and prom.values('sum(rate(llm_gateway_requests_total{provider!="-"}[1m]))'))
    wait_for("LLMGatewayReplicaDown for gw2", lambda: [a for a in prom.alerts()
             if a["labels"]["alertname"] == "LLMGatewayReplicaDown" and a["labels"]["instance"] == gw2])
    # Step 1's refusals keep LLMGatewayRateLimited firing for its 5-minute window.
    firing = sorted(set(a["labels"]["alertname"] for a in prom.alerts()) - {"LLMGatewayRateLimited"})
    if firing != ["LLMGatewayReplicaDown"]:
        fail(f"only LLMGatewayReplicaDown should fire besides step 1's LLMGatewayRateLimited, got {firing}")
    print("ok: gw2 stopped: every request served by gw1, up == 0 for gw2, sums still add up, "
          "LLMGatewayReplicaDown fired")
    cleanup()
    print(f"PASS: scaling-out recipe in {time.monotonic() - started:.0f} s")


def forwarded(url):
    """The replica's own count of requests that reached a provider, from its /metrics."""
    text = http("GET", url + "/metrics")[2].decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("llm_gateway_requests_total{") and 'provider="-"' not in line)


def _redis_ping(port):
    import socket
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


if __name__ == "__main__":
    main()
