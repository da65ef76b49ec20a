"""``synth`` backend: the exact IUV the synthetic renderer wrote beside each image (``iuv/<key>.png``)."""

from pathlib import Path

import numpy as np

from ..errors import InputError
from ..imageio import read_iuv


class SynthBackend:
    name = "synth"

    def __init__(self, root):
        from ..synth import iuv_path

        self.root = Path(root)
        self._iuv_path = iuv_path
        if not (self.root / "iuv").is_dir():
            raise InputError(f"{self.root} has no iuv/ folder: the synth backend needs a dataset written by "
                             "`sanreid synth` (use --backend densepose or dump for other datasets)")

    def settings(self):
        return {"mode": "truth", "source": "iuv/ PNGs of the synthetic renderer"}

    def predict(self, images, keys):
        results = []
        for image, key in zip(images, keys):
            path = self._iuv_path(self.root, key)
            iuv = read_iuv(path)
            if iuv.shape[:2] != image.shape[:2]:
                raise InputError(f"{path} is {iuv.shape[1]}x{iuv.shape[0]} but image {key} is "
                                 f"{image.shape[1]}x{image.shape[0]}: rerun `sanreid synth`")
            found = bool(np.any(iuv[..., 0]))
            results.append((iuv if found else None, 1.0 if found else 0.0))
        return results
