#!/bin/sh
# Example task: publish whatever packages built for $BOA_VERSION.
set -eu
echo "publishing binary packages for ${BOA_VERSION}"
sleep "${BOA_EXAMPLE_SLEEP:-0.1}"
