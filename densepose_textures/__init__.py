"""DensePose IUV backends, UV texture atlases, symmetry filling and HDF5 texture shards."""
