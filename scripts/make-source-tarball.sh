#!/bin/sh
# Example task: build the source tarball for $BOA_VERSION.
# Dummy work; a real pipeline checks out the tag and runs `make dist`.
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
echo "making source tarball for version ${BOA_VERSION} (mode ${BOA_MODE})"
sleep "${BOA_EXAMPLE_SLEEP:-0.2}"
echo "hhvm-${BOA_VERSION}.tar.gz" > "hhvm-${BOA_VERSION}.tar.gz"
upload "hhvm-${BOA_VERSION}.tar.gz" "s3://hhvm-downloads/source/hhvm-${BOA_VERSION}.tar.gz"
echo "done"
