#!/usr/bin/env bash
# CI gate: audit a Metaflow run, keep a SARIF report, let the exit code decide.
#
#   SAFEART_POLICY=safeart.toml bash gate.sh PATHSPEC [REPORT.sarif]
#
# Exit 0: clean, the job passes. 1: findings (unknown or dangerous classes, changed or
# unreadable blobs), the job fails. 2: usage or configuration error. The report is written
# in every case; upload it to code scanning (e.g. github/codeql-action/upload-sarif).
set -u
pathspec=$1
report=${2:-report.sarif}
safeart scan "$pathspec" --format sarif --output "$report"
code=$?
case $code in
  0) echo "gate: PASS $pathspec (exit 0; report $report)" ;;
  1) echo "gate: FAIL $pathspec has findings (exit 1; report $report)" ;;
  *) echo "gate: ERROR scanning $pathspec (exit $code)" ;;
esac
exit $code
