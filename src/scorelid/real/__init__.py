"""Real data shipped with packages (no downloads): digits, natural-image patches, and studies on them.

* ``datasets``: scikit-learn's 8x8 digits, grayscale patches of scikit-image's sample images,
  PNG-compressed size; corruptions (noise, occlusion) for out-of-distribution inputs;
* ``anomaly``: AUROC of per-point LID as an anomaly score, and k-NN baselines against a reference set;
* ``unet_digits``: a small diffusers ``UNet2DModel`` trained on digits (epsilon / v prediction),
  estimated through the VP adapter;
* ``bench``: ``run_real(out_dir)``, the real-data benchmark (results, figures, markdown).
"""

from scorelid.real.anomaly import auroc, knn_lid
from scorelid.real.datasets import digits, image_patches, noisy, occluded, png_size, png_sizes

__all__ = ["auroc", "digits", "image_patches", "knn_lid", "noisy", "occluded", "png_size", "png_sizes"]
