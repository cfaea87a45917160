#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The Python demo platform: tests/workers/run_platform.sh with --python (Debian's
# /usr/bin/python3.11, or $INSA_PYTHON) and the scripts of this directory. Same modes
# and options (see that script), e.g.
#   tests/workers/python/run_platform.sh demo --run-dir /tmp/insa-demo-py --start-delay-ms 3000
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mode=${1:-}
(($#)) && shift
exec "$here/../run_platform.sh" "$mode" --python "${INSA_PYTHON:-/usr/bin/python3.11}" --script-dir "$here" "$@"
