# Sourced by .ci/run, .ci/latest and .ci/lock: one fresh virtual environment, the whole suite.
# new_venv DIR: a fresh venv in DIR, activated, with pip upgraded and the CPU torch pin first.
# run_suite ARGS...: pytest on tests/; fails on any failure and when nothing was collected (pytest's 5).

ensure_chromium() {
    # The dashboard tests drive Debian's Chromium (playwright never downloads a browser here).
    if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
            || echo "could not install chromium; the browser tests will skip" >&2
    fi
}

ensure_slurm() {
    # The Slurm tests start a one-node cluster with Debian's slurm-wlm and munge (tests/deploy/slurm_cluster.py).
    if { [ ! -x /usr/sbin/slurmctld ] || [ ! -x /usr/sbin/munged ]; } && [ "$(id -u)" = 0 ] \
        && command -v apt-get >/dev/null 2>&1; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            slurm-wlm munge >/dev/null) || echo "could not install slurm-wlm and munge; the Slurm tests will skip" >&2
    fi
}

new_venv() {
    rm -rf "$1"
    python3 -m venv "$1"
    # shellcheck disable=SC1091
    . "$1/bin/activate"
    python -m pip install -q --upgrade pip
}

run_suite() {
    set +e
    python -m pytest -q "$@"
    local rc=$?
    set -e
    if [ "$rc" -eq 5 ]; then
        echo "pytest collected no tests" >&2
        return 1
    fi
    return "$rc"
}
