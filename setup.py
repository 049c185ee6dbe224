"""Packaging for vidclass: the library, the Beam pipelines and the `vidclass` command.

Dataflow ships this file with `--setup_file ./setup.py`, so workers get exactly these packages and pins.
"""
import setuptools

setuptools.setup(
    name="vidclass",
    version="0.1.0",
    description="Batch video classification on TensorFlow and Apache Beam",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10,<3.13",
    packages=setuptools.find_packages(include=["vidclass", "vidclass.*", "pipelines", "pipelines.*"]),
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "tensorboard>=2.20,<3",  # TF 2.21 no longer pulls it in; training writes TensorBoard logs
        "apache-beam>=2.77,<2.78",
        # PyAV: FFmpeg's libraries with dav1d, libvpx, x264/x265 and SVT-AV1 in its wheels, so every modern
        # codec decodes (and tests encode their own videos) without a system ffmpeg
        "av>=14,<20",
        "opencv-python-headless>=4.10,<6",  # resize and JPEG, where it is the fastest tool
        "numpy>=1.26,<3",
        "pyarrow>=17,<27",
        "fsspec>=2024.6",
        # Beam's WriteToTFRecord needs a CRC32C implementation and fails at write time without one.
        "google-crc32c>=1.5,<2",
        "matplotlib>=3.8,<4",
    ],
    extras_require={
        # moto[server]: a real S3-compatible server on loopback for the remote-storage tests; s3fs (and boto3,
        # which Beam's S3 IO uses) so those tests reach it the way users reach S3, MinIO or Ceph
        "dev": ["pytest>=8,<10", "pytest-timeout>=2.3,<3", "duckdb>=1.0", "pandas>=2.2", "build>=1.2",
                "moto[server]>=5,<6", "s3fs>=2024.6", "boto3>=1.34"],
        "gcp": ["apache-beam[gcp]>=2.77,<2.78", "gcsfs>=2024.6"],
        "s3": ["apache-beam[aws]>=2.77,<2.78", "s3fs>=2024.6"],
    },
    entry_points={"console_scripts": ["vidclass=vidclass.cli:main"]},
)
