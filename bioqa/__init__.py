"""bioqa: biomedical retrieval-augmented question answering on BioASQ Task B."""

from bioqa.hub_kernels import disable_hub_kernel_probe

__version__ = "0.1.0"

disable_hub_kernel_probe()
