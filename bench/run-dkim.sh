#!/usr/bin/env bash
# bench-dkim: the relay benchmark (run-relay.sh) with 100 KB messages signed
# by cuemta with a fresh RSA 2048 key (rsa-sha256, relaxed/relaxed, the
# sender domain example.com), the sink verifying the signature of one
# delivered message in DKIM_EVERY against the key's TXT record (never DNS).
# Reports delivered msgs/s against the target of the issue, 1,000 msgs/s,
# and the verification counts; exits 1 when a verified signature fails.
#
# Knobs (environment): as run-relay.sh, with SIZE (102400), DURATION (10),
# DKIM_EVERY (10), TARGET_RATE (1000); the limited and paced variants are
# off unless LIMITED_DURATION / PACED_DURATION say otherwise.
set -euo pipefail
export BENCH_NAME=bench-dkim DKIM=1
export SIZE=${SIZE:-102400}
export DURATION=${DURATION:-10}
export DKIM_EVERY=${DKIM_EVERY:-10}
export TARGET_RATE=${TARGET_RATE:-1000}
export LIMITED_DURATION=${LIMITED_DURATION:-0}
export PACED_DURATION=${PACED_DURATION:-0}
exec bash "$(dirname "$0")/run-relay.sh"
