#!/bin/sh
# Example task: build and push the Docker images of $BOA_VERSION.
set -eu
echo "pushing docker images for ${BOA_VERSION}"
sleep "${BOA_EXAMPLE_SLEEP:-0.1}"
