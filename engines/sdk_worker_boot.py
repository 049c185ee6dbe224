"""A Docker-free stand-in for the boot program of Beam's Python SDK container, for PROCESS environments.

A runner with ``--environment_type=PROCESS --environment_config='{"command": ".../engines/beam_boot.sh"}'``
starts that command once per SDK harness, as ``COMMAND --id=ID --provision_endpoint=HOST:PORT`` (older
runners also pass ``--logging_endpoint``, ``--artifact_endpoint``, ``--control_endpoint`` and maybe
``--semi_persist_dir``). Like the container's Go ``boot``, this:

1. asks the provision service for the ProvisionInfo (pipeline options, the control/logging/artifact
   endpoints, the staged artifacts, the runner's capabilities);
2. downloads the staged artifacts into ``SEMI_PERSIST_DIR/staged`` (so a pickled main session loads and
   staged files are on ``sys.path``);
3. runs ``apache_beam.runners.worker.sdk_worker_main`` with the environment variables it expects.

Unlike ``boot`` it installs nothing: requirements files, ``--setup_file`` sdists and ``--extra_package``
wheels are downloaded but not pip-installed. The harness runs in the interpreter that runs this file
(``beam_boot.sh`` picks it from ``BEAM_BOOT_PYTHON``), so that interpreter's environment must already hold
Beam and the pipeline's code: true on a single machine that shares one virtualenv; a real cluster needs
the same environment on each worker host (or Beam's SDK container images).

Compared with the EXTERNAL worker pool, each TaskManager starts and stops its own harness processes, so
two TaskManagers on one host cannot stop each other's harness (they both number their workers ``1-1``,
``2-1``, ... and a shared ``worker_pool_main`` keys its processes by that id alone).
"""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import shutil
import sys
import tempfile

_LOG = logging.getLogger("beam_boot")


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--id", required=True)
    p.add_argument("--provision_endpoint", required=True)
    p.add_argument("--logging_endpoint", default="")
    p.add_argument("--artifact_endpoint", default="")
    p.add_argument("--control_endpoint", default="")
    p.add_argument("--semi_persist_dir", default="")
    args, unknown = p.parse_known_args(argv)
    if unknown:
        _LOG.warning("ignoring unknown boot flags: %s", unknown)
    return args


def _materialize(channel, dependencies, staged_dir: str, metadata) -> list[str]:
    """Download each artifact with a 'staging_to' role into ``staged_dir``; return the names written."""
    from apache_beam.portability import common_urns
    from apache_beam.portability.api import beam_artifact_api_pb2, beam_artifact_api_pb2_grpc
    from apache_beam.portability.api import beam_runner_api_pb2

    stub = beam_artifact_api_pb2_grpc.ArtifactRetrievalServiceStub(channel)
    resolved = stub.ResolveArtifacts(
        beam_artifact_api_pb2.ResolveArtifactsRequest(
            artifacts=list(dependencies),
            preferred_urns=[common_urns.artifact_types.FILE.urn, common_urns.artifact_types.URL.urn],
        ),
        metadata=metadata,
    ).replacements
    os.makedirs(staged_dir, exist_ok=True)
    written = []
    for artifact in resolved:
        if artifact.role_urn != common_urns.artifact_roles.STAGING_TO.urn:
            _LOG.warning("skipping artifact with role %s", artifact.role_urn)
            continue
        name = beam_runner_api_pb2.ArtifactStagingToRolePayload.FromString(artifact.role_payload).staged_name
        path = os.path.join(staged_dir, os.path.basename(name))
        with open(path, "wb") as out:
            for chunk in stub.GetArtifact(beam_artifact_api_pb2.GetArtifactRequest(artifact=artifact), metadata=metadata):
                out.write(chunk.data)
        written.append(os.path.basename(name))
    return written


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s boot[%(process)d] %(message)s")
    args = _parse(sys.argv[1:] if argv is None else argv)
    log_dir = os.environ.get("BEAM_BOOT_LOG_DIR")
    if log_dir:  # the runner may discard this process's stderr: keep the boot's own lines in a file too
        handler = logging.FileHandler(os.path.join(log_dir, f"sdk-boot-{args.id}-{os.getpid()}.log"))
        handler.setFormatter(logging.getLogger().handlers[0].formatter)
        _LOG.addHandler(handler)
    try:
        _boot(args)
    except BaseException:
        _LOG.exception("worker %s: boot or harness failed", args.id)
        raise


def _boot(args: argparse.Namespace) -> None:
    import grpc
    from google.protobuf import json_format, text_format

    from apache_beam.portability.api import beam_provision_api_pb2, beam_provision_api_pb2_grpc

    metadata = [("worker_id", args.id)]
    with grpc.insecure_channel(args.provision_endpoint) as channel:
        info = beam_provision_api_pb2_grpc.ProvisionServiceStub(channel).GetProvisionInfo(
            beam_provision_api_pb2.GetProvisionInfoRequest(), metadata=metadata
        ).info

    def endpoint(flag: str, descriptor) -> str:
        return flag or descriptor.url

    control = endpoint(args.control_endpoint, info.control_endpoint)
    logging_ep = endpoint(args.logging_endpoint, info.logging_endpoint)
    artifact_ep = endpoint(args.artifact_endpoint, info.artifact_endpoint)
    if not control:
        raise SystemExit("boot: no control endpoint (neither --control_endpoint nor in ProvisionInfo)")

    if args.semi_persist_dir:
        semi = args.semi_persist_dir
    else:
        semi = tempfile.mkdtemp(prefix=f"beam-sdk-{args.id}-")
        atexit.register(shutil.rmtree, semi, ignore_errors=True)
    staged = os.path.join(semi, "staged")
    if info.dependencies and artifact_ep:
        with grpc.insecure_channel(artifact_ep) as channel:
            names = _materialize(channel, info.dependencies, staged, metadata)
        _LOG.info("worker %s: staged %s in %s (not installed)", args.id, names, staged)

    env = os.environ
    env["WORKER_ID"] = args.id
    env["PIPELINE_OPTIONS"] = json_format.MessageToJson(info.pipeline_options)
    env["CONTROL_API_SERVICE_DESCRIPTOR"] = f'url: "{control}"'
    if logging_ep:
        env["LOGGING_API_SERVICE_DESCRIPTOR"] = f'url: "{logging_ep}"'
    if info.status_endpoint.url:
        env["STATUS_API_SERVICE_DESCRIPTOR"] = text_format.MessageToString(info.status_endpoint)
    env["SEMI_PERSISTENT_DIRECTORY"] = semi
    env["RUNNER_CAPABILITIES"] = " ".join(info.runner_capabilities)
    _LOG.info("worker %s: starting the Python SDK harness (control %s)", args.id, control)

    from apache_beam.runners.worker import sdk_worker_main

    sdk_worker_main.main(sys.argv)


if __name__ == "__main__":
    main()
