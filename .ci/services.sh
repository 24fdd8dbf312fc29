#!/usr/bin/env bash
# Installs and starts what the tests beyond `cargo test` need, and prints the shell lines
# that point the tests at them (only those go to stdout; progress goes to stderr):
#
#   eval "$(bash .ci/services.sh)"
#
# - Debian packages: PostgreSQL, Chromium and its driver (the studio's browser test),
#   ffmpeg (an independent decoder and encoder for media checks);
# - a Python venv with the official `openai` SDK, `selenium` and `moto[server]` (an
#   S3-compatible server);
# - a throwaway PostgreSQL cluster on 127.0.0.1 and a moto server.
# Idempotent: reuses what is already installed or running.
#   TESSERA_CI_VENV  the venv (default /tmp/tessera-ci-venv)
#   TESSERA_PG_PORT  PostgreSQL's port (default 5439)
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "services: $*" >&2; }

venv="${TESSERA_CI_VENV:-/tmp/tessera-ci-venv}"
pg_port="${TESSERA_PG_PORT:-5439}"
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"

# --- Debian packages ---------------------------------------------------------------
missing=()
command -v ffmpeg >/dev/null || missing+=(ffmpeg)
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# --- Python clients ----------------------------------------------------------------
[ -x "$venv/bin/python" ] || python3 -m venv "$venv" >&2
if ! "$venv/bin/python" -c 'import openai, selenium, moto, c2pa' 2>/dev/null; then
    log "installing openai, selenium, moto[server], c2pa-python into $venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check openai selenium 'moto[server]' c2pa-python >&2
fi

# --- PostgreSQL --------------------------------------------------------------------
pgbin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
pgdir=/tmp/tessera-ci-pg
if ! "$pgbin/pg_isready" -q -h 127.0.0.1 -p "$pg_port"; then
    log "starting PostgreSQL ($pgbin) on port $pg_port"
    as=()
    if [ "$(id -u)" = 0 ]; then as=(runuser -u postgres --); fi   # initdb refuses root
    rm -rf "$pgdir"
    mkdir -p "$pgdir"
    [ "$(id -u)" = 0 ] && chown postgres "$pgdir"
    "${as[@]}" "$pgbin/initdb" -D "$pgdir/data" -A trust -U postgres >/dev/null
    "${as[@]}" "$pgbin/pg_ctl" -D "$pgdir/data" -l "$pgdir/log" -w \
        -o "-p $pg_port -k $pgdir -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off" start >&2
fi
"$pgbin/psql" -q -h 127.0.0.1 -p "$pg_port" -U postgres -tc "SELECT 1 FROM pg_database WHERE datname = 'tessera_test'" | grep -q 1 \
    || "$pgbin/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres tessera_test
echo "export TESSERA_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:$pg_port/tessera_test"

# --- S3 (moto) ---------------------------------------------------------------------
TESSERA_CI_VENV="$venv" bash crates/tessera-server/tests/start_moto.sh
echo "export TESSERA_CI_VENV=$venv"
