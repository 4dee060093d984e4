#!/usr/bin/env bash
# Keep a plugin script running: the imerit-ango SDK exits whenever its
# connection to the hub drops and one reconnect fails (a hub restart or deploy,
# a network cut), so something has to start it again.
#
#   HOST=https://hub.example.com PLUGIN_ID=... PLUGIN_SECRET=... \
#       examples/run_forever.sh .venv-plugin/bin/python examples/model_plugin.py
#
# Restarts the command whenever it exits, waiting 1 s, then 2, 4, ... up to 30 s
# between attempts; a run that lasted a minute or more resets the wait to 1 s.
# SIGTERM and SIGHUP are forwarded to the script (SIGINT as SIGTERM), and then this wrapper exits
# with the script's status instead of restarting it.
set -u

if [ "$#" -eq 0 ]; then
    echo "usage: $0 command [args...]" >&2
    exit 2
fi

MIN_DELAY=${RUN_FOREVER_MIN_DELAY:-1}
MAX_DELAY=${RUN_FOREVER_MAX_DELAY:-30}
HEALTHY_AFTER=${RUN_FOREVER_HEALTHY_AFTER:-60}

delay=$MIN_DELAY
child=0
stopping=0

forward() {
    stopping=1
    if [ "$child" -ne 0 ]; then
        kill -s "$1" "$child" 2>/dev/null || true
    fi
}
trap 'forward TERM' TERM
# A background child starts with SIGINT ignored (no job control here), so
# Ctrl-C reaches it as SIGTERM.
trap 'forward TERM' INT
trap 'forward HUP' HUP

while :; do
    started=$SECONDS
    "$@" &
    child=$!
    # `wait` returns early when a trapped signal arrives: wait again until the
    # child has really exited, to collect its status.
    status=0
    while :; do
        wait "$child"
        status=$?
        if ! kill -0 "$child" 2>/dev/null; then
            break
        fi
    done
    child=0
    if [ "$stopping" -eq 1 ]; then
        exit "$status"
    fi
    if [ $((SECONDS - started)) -ge "$HEALTHY_AFTER" ]; then
        delay=$MIN_DELAY
    fi
    echo "run_forever: '$*' exited with status $status; restarting in ${delay} s" >&2
    sleep "$delay" &
    sleeper=$!
    wait "$sleeper" || true
    if [ "$stopping" -eq 1 ]; then
        kill "$sleeper" 2>/dev/null || true
        exit "$status"
    fi
    delay=$((delay * 2))
    if [ "$delay" -gt "$MAX_DELAY" ]; then
        delay=$MAX_DELAY
    fi
done
