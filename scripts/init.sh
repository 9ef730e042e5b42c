#!/bin/sh
# Runs once per worker before its first task. Example: prepare a build cache folder.
set -eu
echo "init: preparing worker for ${BOA_STEP}"
mkdir -p "${BOA_WORKER_CACHE:-${TMPDIR:-/tmp}/build-on-aws-cache}"
