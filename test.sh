#!/usr/bin/env bash
# The test command: brings what the tests need, then runs every test project.
# Arguments go to `dotnet test` (.ci/run passes `-c Release --no-build`).
# Idempotent and quiet when everything is there; it reaches no network but the OS package registry.
set -euo pipefail
cd "$(dirname "$0")"

# Runs an apt-get command as root: directly when root, through sudo when it exists.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        return 1
    fi
}

# Installs Debian packages; says how to get them by hand when it cannot.
install_packages() {
    echo "test.sh: installing $* (apt-get)" >&2
    if ! command -v apt-get >/dev/null 2>&1 \
        || ! as_root apt-get update -qq \
        || ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null; then
        echo "test.sh: could not install $* with apt-get (it needs root or sudo, and the package registry)." >&2
        echo "test.sh: install it by hand (e.g. 'apt-get install $*') and run ./test.sh again." >&2
        exit 1
    fi
}

# nats-server: the NATS tests and the CLI worker tests run a real one (JetStream), started by NatsServerFixture.
need_nats_server() {
    command -v nats-server >/dev/null 2>&1 && return 0
    install_packages nats-server
    if ! command -v nats-server >/dev/null 2>&1; then
        echo "test.sh: nats-server is still not on PATH after installing it." >&2
        exit 1
    fi
}

# PostgreSQL 15 (the store's tests) goes here: need_postgres, a cluster in a temp folder on a
# loopback port (binaries perhaps under /usr/lib/postgresql/15/bin), stopped on exit.

need_nats_server

dotnet test Pipeline.sln "$@"
