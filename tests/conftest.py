import pathlib
import sys

import vidclass  # noqa: F401  first, as the CLI does: it sets TensorFlow's CPU kernels before TF loads

# tests import their own helpers (videos.py, zoo.py) by plain name
sys.path.insert(0, str(pathlib.Path(__file__).parent))
