#!/usr/bin/env bash
# Starts moto (https://github.com/getmoto/moto), an S3-compatible server in Python, for
# tests/s3_moto.rs, and prints the shell lines that point the test at it:
#
#   eval "$(bash crates/tessera-server/tests/start_moto.sh)"
#
# Idempotent: reuses the venv, and a moto already answering on the port. Only the
# export lines go to stdout (for eval); progress goes to stderr.
#   TESSERA_CI_VENV   venv to create or reuse (default /tmp/tessera-ci-venv)
#   TESSERA_MOTO_PORT port to use if free (default 5055); otherwise a free one is picked
set -euo pipefail

venv="${TESSERA_CI_VENV:-/tmp/tessera-ci-venv}"
port="${TESSERA_MOTO_PORT:-5055}"
log() { echo "start_moto: $*" >&2; }

if [ ! -x "$venv/bin/moto_server" ]; then
    log "installing moto[server] into $venv"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'moto[server]' >&2
fi
py="$venv/bin/python"

# "moto": moto's own API answers; "busy": something else holds the port; "free".
probe() {
    "$py" - "$1" <<'EOF'
import socket, sys, urllib.request
port = int(sys.argv[1])
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/data.json", timeout=1) as r:
        print("moto" if r.status == 200 else "busy")
except Exception:
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        print("free")
    except OSError:
        print("busy")
    finally:
        s.close()
EOF
}

state="$(probe "$port")"
if [ "$state" = busy ]; then
    port="$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    log "port ${TESSERA_MOTO_PORT:-5055} is taken by something else; using $port"
    state=free
fi

if [ "$state" = free ]; then
    logfile="${TMPDIR:-/tmp}/tessera-moto-$port.log"
    log "starting moto_server on 127.0.0.1:$port (log: $logfile)"
    # Detached, with every stream redirected, so that $(...) in the caller returns.
    nohup "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" </dev/null >"$logfile" 2>&1 &
    for _ in $(seq 1 60); do
        [ "$(probe "$port")" = moto ] && break
        sleep 0.5
    done
    if [ "$(probe "$port")" != moto ]; then
        log "moto did not answer on port $port within 30 s; its log:"
        tail -n 20 "$logfile" >&2 || true
        exit 1
    fi
else
    log "reusing moto already running on 127.0.0.1:$port"
fi

echo "export TESSERA_TEST_S3_ENDPOINT=http://127.0.0.1:$port"
