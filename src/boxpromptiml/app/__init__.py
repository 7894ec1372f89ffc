"""`bpiml serve`: a local web app to draw boxes (the method's annotation step) and inspect images.

The server (FastAPI + uvicorn) is a thin layer over the library: datasets and COCO boxes come from
``data``, pseudo masks from a ``teachers`` teacher, heat maps from a ``deployment`` predictor. The page is
one static HTML file with plain JavaScript and canvases.
"""
