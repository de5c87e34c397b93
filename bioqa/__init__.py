"""bioqa: biomedical retrieval-augmented question answering on BioASQ Task B."""

__version__ = "0.1.0"
