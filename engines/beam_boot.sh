#!/bin/sh
# Command of a Beam PROCESS environment (see sdk_worker_boot.py): runs the Python SDK harness with the
# interpreter named by BEAM_BOOT_PYTHON (set through the environment_config's "env"), else python3.
exec "${BEAM_BOOT_PYTHON:-python3}" "$(dirname "$0")/sdk_worker_boot.py" "$@"
