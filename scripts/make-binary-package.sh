#!/bin/sh
# Example task: build the package of $BOA_VERSION for $BOA_DISTRO.
# BOA_EXAMPLE_FAIL_DISTRO makes one distro fail (used by the tests to show failure handling).
set -eu
echo "building hhvm ${BOA_VERSION} for ${BOA_DISTRO} with ${PARALLEL_JOBS} jobs"
sleep "${BOA_EXAMPLE_SLEEP:-0.2}"
if [ "${BOA_DISTRO}" = "${BOA_EXAMPLE_FAIL_DISTRO:-}" ]; then
  echo "error: compiler crashed on ${BOA_DISTRO}" >&2
  exit 2
fi
echo "built hhvm_${BOA_VERSION}.deb"
