#!/bin/sh
# Example task: build the source tarball for $BOA_VERSION.
# Dummy work; a real pipeline checks out the tag and runs `make dist`.
set -eu
echo "making source tarball for version ${BOA_VERSION} (mode ${BOA_MODE})"
sleep "${BOA_EXAMPLE_SLEEP:-0.2}"
echo "hhvm-${BOA_VERSION}.tar.gz" > "hhvm-${BOA_VERSION}.tar.gz"
echo "done"
