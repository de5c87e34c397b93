"""QLoRA fine-tuning: DataModule, LightningModule and the recipe (the 4-bit base comes from bioqa.models)."""
