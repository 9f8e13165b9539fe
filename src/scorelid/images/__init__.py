"""Images in, LID out: per-image DSM / FLIPD through a pretrained diffusers model (``run``), and the
comparison of runs at several precisions (``compare``)."""

from scorelid.images.run import COLUMNS, IMAGE_SUFFIXES, ImageRun, find_images, load_image, run_images

__all__ = ["COLUMNS", "IMAGE_SUFFIXES", "ImageRun", "find_images", "load_image", "run_images"]
