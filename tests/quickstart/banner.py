"""scripts/quickstart.sh prints its "try this" banner only once the gateway answers /health.

1. GATEWAY_ADDR on a port another socket holds: the script must exit non-zero, name the
   gateway's bind error, and never print the banner.
2. A free port: when the banner line appears, /health must already answer; then SIGTERM to
   the script must stop the gateway and the model server with it.

Stdlib only. Usage: python3 banner.py   (from anywhere; LLM_GATEWAY_BIN and LLM_GATEWAY_CACHE
are passed through to the script).
"""

import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "quickstart.sh"
BANNER = "==> llm-gateway on http://"
# A cold run builds the release binary and may fetch the model first.
START_TIMEOUT = 3600


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
            return r.status == 200 and b'"ok"' in r.read()
    except OSError:
        return False


def accepts(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def reap(proc):
    """Kills whatever the script left in its session (it was started in its own), so a broken
    script cannot leave a gateway or a model server running after the test."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def start(gateway_port, model_port):
    env = dict(os.environ, GATEWAY_ADDR=f"127.0.0.1:{gateway_port}", MODEL_PORT=str(model_port))
    return subprocess.Popen(
        ["bash", str(SCRIPT)], env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        start_new_session=True,
    )


def busy_port():
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    proc = start(port, free_port())
    try:
        _, err = proc.communicate(timeout=START_TIMEOUT)
    finally:
        holder.close()
        reap(proc)
    sys.stderr.write(err)
    assert proc.returncode != 0, "quickstart exited 0 with its gateway port taken"
    assert BANNER not in err, "quickstart printed the banner although the gateway could not bind"
    assert "cannot listen on" in err, "the gateway's bind error is missing from the output"
    print(f"ok: busy port {port}: exit status {proc.returncode}, no banner, the bind error shown")


def free_ports():
    gateway_port, model_port = free_port(), free_port()
    proc = start(gateway_port, model_port)
    try:
        seen, answered = [], None
        # The read blocks, so a timer kills the script if the banner never comes: all of its
        # session, as its children (cargo, the model server, the gateway) hold the pipe open too.
        timer = threading.Timer(START_TIMEOUT, lambda: reap(proc))
        timer.start()
        try:
            for line in proc.stderr:
                seen.append(line)
                if line.startswith(BANNER):
                    answered = health(gateway_port)
                    break
        finally:
            timer.cancel()
        assert answered is not None, "no banner; output:\n" + "".join(seen)
        assert answered, "the banner came before the gateway answered /health"
        assert accepts(model_port), "the model server is not up after the banner"
        proc.send_signal(signal.SIGTERM)
        # Drain stderr so the script never blocks on a full pipe while it stops.
        threading.Thread(target=proc.stderr.read, daemon=True).start()
        proc.wait(timeout=60)
        deadline = time.monotonic() + 10
        while (accepts(gateway_port) or accepts(model_port)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not accepts(gateway_port), "the gateway kept running after SIGTERM to the script"
        assert not accepts(model_port), "the model server kept running after SIGTERM to the script"
    finally:
        reap(proc)
    print(f"ok: free port {gateway_port}: banner after /health answered; SIGTERM stopped both")


if __name__ == "__main__":
    busy_port()
    free_ports()
