"""BoxPromptIML: pixel-level image manipulation localization trained from coarse boxes."""

import os

# One pixel limit for every image decoder (BPIML_MAX_PIXELS, default 150 megapixels; a 12000 x 9000 photo is 108).
# Pillow's size is checked from the header in data/images.py; OpenCV, the fallback for formats Pillow cannot read
# (e.g. Radiance HDR), reads its limit from the environment once, when cv2 is first imported, so it is set here,
# before any module of the package imports cv2. A limit the user set for OpenCV is kept.
MAX_PIXELS = int(os.environ.get("BPIML_MAX_PIXELS", 150_000_000))
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_PIXELS))
