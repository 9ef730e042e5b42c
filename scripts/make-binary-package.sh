#!/bin/sh
# Example task: build the package of $BOA_VERSION for $BOA_DISTRO.
# BOA_EXAMPLE_FAIL_DISTRO makes one distro fail (used by the tests to show failure handling).
set -eu
# Uploads $1 to the S3 URL $2; in local mode the "bucket" is a folder (BOA_LOCAL_OBJECTS).
upload() {
  if [ -n "${BOA_LOCAL_OBJECTS:-}" ]; then
    dest="${BOA_LOCAL_OBJECTS}/${2#s3://}"
    mkdir -p "$(dirname "$dest")"
    cp "$1" "$dest"
  else
    aws s3 cp "$1" "$2"
  fi
}
echo "building hhvm ${BOA_VERSION} for ${BOA_DISTRO} with ${PARALLEL_JOBS} jobs"
sleep "${BOA_EXAMPLE_SLEEP:-0.2}"
if [ "${BOA_DISTRO}" = "${BOA_EXAMPLE_FAIL_DISTRO:-}" ]; then
  echo "error: compiler crashed on ${BOA_DISTRO}" >&2
  exit 2
fi
echo "hhvm ${BOA_VERSION} ${BOA_DISTRO}" > "hhvm_${BOA_VERSION}.deb"
upload "hhvm_${BOA_VERSION}.deb" "s3://hhvm-downloads/packages/${BOA_DISTRO}/hhvm_${BOA_VERSION}.deb"
echo "built hhvm_${BOA_VERSION}.deb"
