#!/usr/bin/env bash
# Runs a command and checks both its exit status and its output, which ctest's
# PASS_REGULAR_EXPRESSION alone cannot (it ignores the exit status).
#   expect_run.sh zero|nonzero MIN_MATCHES REGEX -- COMMAND...
# Passes when the status is as expected and REGEX matches at least MIN_MATCHES output lines.
set -uo pipefail
want=$1 min=$2 regex=$3
shift 3
[[ "$1" == "--" ]] && shift
output=$("$@" 2>&1)
status=$?
printf '%s\n' "$output"
matches=$(printf '%s\n' "$output" | grep -cE -- "$regex")
if [[ "$want" == zero && $status -ne 0 ]] || [[ "$want" == nonzero && $status -eq 0 ]]; then
  echo "expect_run: exit status $status, wanted $want" >&2
  exit 1
fi
if ((matches < min)); then
  echo "expect_run: '$regex' matched $matches lines, wanted at least $min" >&2
  exit 1
fi
