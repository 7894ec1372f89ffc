"""`bpiml demo`: forge a few photos, run teacher and student, and write an HTML report."""

from .photos import DEMO_PLAN, DemoImage, make_demo_images
from .run import DemoResult, run_demo

__all__ = ["DEMO_PLAN", "DemoImage", "DemoResult", "make_demo_images", "run_demo"]
