"""qsal_jax: query-synthesis active learning of neural surrogates for PDE simulators, in JAX."""

from setuptools import find_packages, setup

setup(
    name="qsal_jax",
    version="0.1.0",
    description="Query-synthesis active learning of neural PDE surrogates, in JAX.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["qsal_jax", "qsal_jax.*"]),
    python_requires=">=3.11",
    # Ranges, not pins: accelerator machines bring their own jax/jaxlib build. The lower bounds
    # are the versions the suite was run with (constraints.txt has the exact set for make/CI).
    install_requires=[
        "jax>=0.10",
        "flax>=0.12",
        "optax>=0.2.8",
        "diffrax>=0.7",
        "distrax==0.1.9",  # its tfp-nightly dependency is unpinned: constraints.txt fixes the build
        "numpy>=2.0",
        "absl-py>=2.0",
        "ml_collections>=1.0",
        "orbax-checkpoint>=0.12",
        "matplotlib>=3.8",
        "tensorboardX>=2.6",
        "scipy>=1.11",  # Sobol' direction numbers
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-xdist>=3.5",  # the suite runs on two workers
            "hypothesis>=6.100",
            "nbmake>=1.5",
            "ipykernel>=6",
            "dask[distributed]>=2024.1",
            "exponax>=0.1",
            "h5py>=3.10",  # the HDF5 export (qsal_jax.experiments.export)
        ],
        "export": ["h5py>=3.10"],
    },
)
