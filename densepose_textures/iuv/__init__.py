"""IUV stage: backends (synthetic truth, DensePose, DensePose dump files) and the HDF5 IUV store.

``store.IUVStore`` reads a store; ``run.run_iuv`` writes one; ``merge.merge_shards`` joins shard
files; ``backends.make_backend(name, **options)`` builds a backend by name.
"""
