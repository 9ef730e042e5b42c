#!/bin/sh
# Example task: publish the source tarball of $BOA_VERSION.
set -eu
echo "publishing hhvm-${BOA_VERSION}.tar.gz"
sleep "${BOA_EXAMPLE_SLEEP:-0.1}"
