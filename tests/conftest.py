import pathlib
import sys

# tests import their own helpers (videos.py, zoo.py) by plain name
sys.path.insert(0, str(pathlib.Path(__file__).parent))
