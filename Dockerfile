# A Beam SDK worker image that also runs the vidclass CLI.
#   Dataflow: --sdk_container_image IMAGE --experiments use_runner_v2
#   CLI:      docker run --rm --entrypoint vidclass IMAGE probe /data/videos --json
# Keep the Beam tag equal to the apache-beam pin in setup.py: workers and launcher must match.
FROM apache/beam_python3.11_sdk:2.77.0

# ffmpeg: not needed to decode (OpenCV bundles FFmpeg) but handy for transcoding what OpenCV cannot read.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ffmpeg \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/vidclass
COPY setup.py README.md ./
COPY vidclass ./vidclass
COPY pipelines ./pipelines
RUN pip install --no-cache-dir '.[gcp]' && python -c "import vidclass.video, pipelines.infer"

# Beam's boot program stays the entrypoint, so the image serves as a Dataflow custom container.
ENTRYPOINT ["/opt/apache/beam/boot"]
